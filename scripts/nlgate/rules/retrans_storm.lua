--[[ nlgate.rules.retrans_storm: retransmission storms per peer.

Detects: TCP segments retransmitted towards one peer, all its sockets
together, per second over a window. Each poll's total_retrans of a socket is
turned into a delta by gw.rate (keyed by the socket cookie), the deltas are
summed per peer by a windowed gw.counter, and at each window's end the rate
goes through a gw.threshold with hysteresis.

Records: sock (tcp_info: total_retrans; cookie).

Options (defaults):
  name      "retrans_storm"  alert name: frames are tagged alert.<name>
  peer      "dst"            the sock field naming a peer
  window    "10s"            the window retransmits are summed over
  above     10               retransmits per second to one peer that fire
  clear     above / 2        ... and below which it resolves
  hold      nil              how long either must hold first ("30s")
  expire    "10m"            forget a socket (and a peer's alert state) not seen this long
  severity  "warning"; every (gw.alert's rate limit); on_alert function(a)

Alert alert.<name>, key = the peer: state firing / resolved, value (per
second), peer, retransmits (in the window), window (seconds).
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { peer = "dst", window = "10s", above = 10, clear = false, hold = false,
               expire = "10m" }

function M.new(opts)
  local o = rules.options("retrans_storm", M.defaults, opts)
  o.clear = o.clear or o.above / 2
  local self = rules.object(M, o)
  local secs = rules.seconds(o.window)
  self.threshold = rules.threshold(o)
  self.deltas = gw.rate { by = "cookie", bits = 32, expire = o.expire }
  self.per_peer = gw.counter { by = o.peer, window = o.window, on_close = function(w)
    local seen = {}
    for peer, n in w:pairs() do
      seen[peer] = true
      self.threshold:update(peer, n / secs,
                            { peer = peer, retransmits = n, window = secs })
    end
    rules.sweep(self.threshold, seen)
  end }
  return self
end

function M:sock(s)
  local total = s.total_retrans
  if not total then return end
  local d = self.deltas:update(s, total)
  if d and d > 0 then self.per_peer:add(s, d) end
end

return M
