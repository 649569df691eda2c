-- N alerts with distinct keys from the top level (tests/spec/alert_spec.lua):
-- past 10,000 pairs remembered, the oldest is forgotten early and counted.
-- MODE=sweep: one pair with a long every before 9,999 short ones; a minute
-- later a new pair must find room among the expired ones.
local gw = require "nlgate"

gw.unix { path = "alert-many.sock" }
if os.getenv("MODE") == "sweep" then
  gw.alert { name = "many", key = "old", every = "24h" }
  for i = 1, 9999 do gw.alert { name = "many", key = i, every = "1s" } end
  gw.after("60s", function() gw.alert { name = "many", key = "new", every = "1m" } end)
else
  for i = 1, tonumber(os.getenv("N") or "1") do
    gw.alert { name = "many", key = i, every = "1m" }
  end
end
