-- N alerts with distinct keys from the top level (tests/spec/alert_spec.lua):
-- past 10,000 pairs remembered, new pairs are refused and counted.
local gw = require "nlgate"

gw.unix { path = "alert-many.sock" }
for i = 1, tonumber(os.getenv("N") or "1") do
  gw.alert { name = "many", key = i, every = "1m" }
end
