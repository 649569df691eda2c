-- Conntrack table pressure: follow conntrack (root) and raise
-- alert.ct_pressure when the table holds more than ABOVE of the kernel's limit
-- (nf_conntrack_max, from the source's stats), resolved under CLEAR; every
-- CHECK the usage also goes to the feed as ct.usage.
-- Env: FEED (ct_pressure.sock), ABOVE (0.8), CLEAR (0.7), CHECK (10s),
-- CT_MAX (a limit of your own instead of the kernel's).
local gw = require "nlgate"
local rules = require "nlgate.rules"
local ct_pressure = require "nlgate.rules.ct_pressure"

local feed = gw.unix { path = os.getenv("FEED") or "ct_pressure.sock" }
local ct = gw.conntrack { events = "new,destroy", quiet = true }
local check = os.getenv("CHECK") or "10s"

rules.attach(ct, {
  ct_pressure.new { above = tonumber(os.getenv("ABOVE") or "0.8"),
                    clear = tonumber(os.getenv("CLEAR") or "0.7"), check = check,
                    max = tonumber(os.getenv("CT_MAX") or "") or false },
}, { kind = "ct" })

gw.every(check, function()
  local st = ct:stats()
  feed:send("ct.usage", { live = st.live, max = st.max })
end)
