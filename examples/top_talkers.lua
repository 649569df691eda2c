-- Top talkers every minute: fold the packets on IFACE into flows and, every
-- minute, send the ten sources that moved the most bytes to the feed as
-- top_talkers { window_start, window_end, by, top = { {key, bytes, error} } }.
-- SOURCE=conntrack counts conntrack's byte counters at each flow's end
-- instead (needs nf_conntrack_acct=1). Env: FEED (top_talkers.sock), IFACE
-- (any), SOURCE (packets), BY (src, dst, pair or dport), WINDOW (1m), N (10).
local gw = require "nlgate"
local rules = require "nlgate.rules"
local top_talkers = require "nlgate.rules.top_talkers"

local feed = gw.unix { path = os.getenv("FEED") or "top_talkers.sock" }
local src
if os.getenv("SOURCE") == "conntrack" then
  src = gw.conntrack { events = "destroy", quiet = true }
else
  src = gw.packets { iface = os.getenv("IFACE") or "any", flows = { idle = "15s", active = "1m" } }
end

rules.attach(src, {
  top_talkers.new { outputs = feed, by = os.getenv("BY") or "src",
                    window = os.getenv("WINDOW") or "1m", n = tonumber(os.getenv("N") or "10") },
})
