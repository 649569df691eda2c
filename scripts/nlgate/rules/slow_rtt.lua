--[[ nlgate.rules.slow_rtt: slow peers, an absolute RTT threshold.

Detects: a peer whose worst smoothed RTT over its established sockets in a
poll is above `above` microseconds; resolves below `clear` (hysteresis), or
when the peer has no established socket left.

Records: sock, ESTAB with tcp_info (rtt_us).

Options (defaults):
  name      "slow_rtt"
  peer      "dst"        the sock field naming a peer
  above     200000       microseconds (200 ms)
  clear     150000
  hold      nil          how long either must hold first ("30s")
  expire    "5m"         a key not updated this long resolves (reason
                         "expired"): polls that bring no record at all
  severity "warning"; every; on_alert

Alert alert.<name>, key = the peer: value (rtt_us), peer, rtt_us, sockets
(established sockets to the peer in that poll).
]]
local rules = require "nlgate.rules"

local M = {}
M.defaults = { peer = "dst", above = 200000, clear = 150000, hold = false, expire = "5m" }

function M.new(opts)
  local o = rules.options("slow_rtt", M.defaults, opts)
  local self = rules.object(M, o)
  self.threshold = rules.threshold(o)
  self.worst, self.count = {}, {}
  return self
end

function M:sock(s)
  if s.state ~= "ESTAB" then return end
  local rtt, peer = s.rtt_us, s[self.opts.peer]
  if not rtt or not peer then return end
  local w = self.worst[peer]
  if not w or rtt > w then self.worst[peer] = rtt end
  self.count[peer] = (self.count[peer] or 0) + 1
end

function M:done(kind)
  if kind ~= "sock" then return end
  for peer, rtt in pairs(self.worst) do
    self.threshold:update(peer, rtt, { peer = peer, rtt_us = rtt, sockets = self.count[peer] })
  end
  rules.sweep(self.threshold, self.worst)
  self.worst, self.count = {}, {}
end

return M
