-- Slow peers to an alert feed: poll established TCP sockets, put each peer's
-- worst smoothed RTT through a threshold with hysteresis (nlgate.rules.slow_rtt)
-- and serve the alerts, alert.slow_rtt firing and resolved, on a unix feed.
-- Env: FEED (slow_peers.sock), SLOW_MS (200; resolves under 3/4 of it),
-- HOLD (how long a peer must stay slow first, e.g. "30s"), EVERY (2s).
local gw = require "nlgate"
local rules = require "nlgate.rules"
local slow_rtt = require "nlgate.rules.slow_rtt"

local ms = tonumber(os.getenv("SLOW_MS") or "200")
gw.unix { path = os.getenv("FEED") or "slow_peers.sock" } -- alerts go to every output
local socks = gw.sockets { every = os.getenv("EVERY") or "2s", proto = "tcp",
                           states = "established" }

rules.attach(socks, {
  slow_rtt.new { above = ms * 1000, clear = ms * 750, hold = os.getenv("HOLD") or false },
})
