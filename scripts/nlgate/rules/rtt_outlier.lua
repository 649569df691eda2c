--[[ nlgate.rules.rtt_outlier: RTT far above a peer's own baseline.

Detects: a peer whose worst smoothed RTT in a poll is more than `factor`
times its baseline, a time-decayed mean (gw.ewma, `half_life`) of its past
worst RTTs. A peer is judged once it has `min_samples` polls of history, and
only when the RTT is at least `min_rtt_us` (sub-millisecond jitter on a LAN
is no outlier). The baseline learns from every poll but the outliers
themselves (so a spike does not raise it): a lasting jump over `factor`
keeps firing until the peer's RTT comes back, while a slower drift is
learned.

Records: sock, ESTAB with tcp_info (rtt_us).

Options (defaults):
  name         "rtt_outlier"
  peer         "dst"        the sock field naming a peer
  factor       3            fire when rtt > factor x baseline
  clear        2            resolve when rtt < clear x baseline
  half_life    "10m"        the baseline's half-life on the gateway clock
  min_samples  5            polls of history before a peer is judged
  min_rtt_us   5000         RTTs below this are never outliers
  hold         nil          how long the condition must hold ("30s")
  expire       "5m"         a key not updated this long resolves (reason
                            "expired"): polls that bring no record at all
  max_peers    100000       peers tracked at most
  severity "warning"; every; on_alert

Alert alert.<name>, key = the peer: value (the ratio), peer, rtt_us,
baseline_us, ratio.
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { peer = "dst", factor = 3, clear = 2, half_life = "10m", min_samples = 5,
               min_rtt_us = 5000, hold = false, expire = "5m", max_peers = 100000 }

function M.new(opts)
  local o = rules.options("rtt_outlier", M.defaults, opts)
  local self = rules.object(M, o)
  self.threshold = rules.threshold { name = o.name, severity = o.severity, every = o.every,
                                     above = o.factor, clear = o.clear, hold = o.hold,
                                     expire = o.expire, message = o.message,
                                     on_alert = o.on_alert }
  self.baseline = gw.ewma { half_life = o.half_life }
  self.samples = gw.counter { max_keys = o.max_peers }
  self.worst = {}
  return self
end

function M:sock(s)
  if s.state ~= "ESTAB" then return end
  local rtt, peer = s.rtt_us, s[self.opts.peer]
  if not rtt or rtt == 0 or not peer then return end
  local w = self.worst[peer]
  if not w or rtt > w then self.worst[peer] = rtt end
end

function M:done(kind)
  if kind ~= "sock" then return end
  local o = self.opts
  for peer, rtt in pairs(self.worst) do
    local base = self.baseline:get(peer)
    local ratio = 0
    if base and base > 0 and self.samples:get(peer) >= o.min_samples then
      ratio = rtt >= o.min_rtt_us and rtt / base or 0
      self.threshold:update(peer, ratio, { peer = peer, rtt_us = rtt,
                                          baseline_us = math.floor(base), ratio = ratio })
    end
    -- an outlier does not teach the baseline (one spike would move a young
    -- baseline by 1/n of itself)
    if ratio <= o.factor then
      self.samples:add(peer)
      self.baseline:update(peer, rtt)
    end
  end
  rules.sweep(self.threshold, self.worst)
  self.worst = {}
end

return M
