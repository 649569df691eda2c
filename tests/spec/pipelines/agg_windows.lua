-- Aggregators over socket records with windows on the gateway clock, for
-- tests/spec/agg_spec.lua: every window's data goes out as a frame
-- (agg.<kind>), each record's EWMA and rate as agg.each, and the window in
-- progress every 5 s as agg.live. WINDOW and SLIDE set the windows (default
-- 10s tumbling).
local gw = require "nlgate"

local out = gw.unix { path = "agg-spec.sock" }
local socks = gw.sockets { every = "1s" }
local window, slide = os.getenv("WINDOW") or "10s", os.getenv("SLIDE")

local function frame(kind, w, rec)
  rec.start, rec.finish, rec.size = w:start(), w:finish(), w:size()
  out:send("agg." .. kind, rec)
end

local count = gw.counter {
  by = "dst", window = window, slide = slide,
  on_close = function(w)
    local keys = {}
    for k, v in w:pairs() do keys[k] = v end
    frame("counter", w, { keys = keys, rate = w:rate("10.0.0.2"), top = w:top(1) })
  end,
}
local rtt = gw.quantiles {
  by = "dst", window = window, slide = slide,
  on_close = function(w)
    frame("quantiles", w, { p50 = w:quantile("10.0.0.2", 0.5), p100 = w:quantile("10.0.0.2", 1),
                            n = w:count("10.0.0.2") })
  end,
}
local ports = gw.distinct {
  by = "dst", of = "sport", window = window, slide = slide,
  on_close = function(w) frame("distinct", w, { n = w:count("10.0.0.2") }) end,
}
local pairs_top = gw.topk {
  k = 2, by = { "dst", "dport" }, window = window, slide = slide,
  on_close = function(w) frame("topk", w, { top = w:top() }) end,
}
local smooth = gw.ewma { by = "dst", half_life = "10s" }
local acked = gw.rate { by = "dst", expire = "30s" }

-- the window in progress, read every 5 s
gw.every("5s", function()
  local top = count:top(1)[1]
  out:send("agg.live", { at = gw.now(), x = count:get("10.0.0.2"), size = count:size(),
                         top = top and top.value, p100 = rtt:quantile("10.0.0.2", 1) })
end)

socks:each(function(s)
  count:add(s)
  if s.rtt_us then rtt:add(s, s.rtt_us) end
  ports:add(s)
  pairs_top:add(s)
  local delta, per_second = acked:update(s, s.bytes_acked or 0)
  out:send("agg.each", { ewma = s.rtt_us and smooth:update(s, s.rtt_us), delta = delta, per_second = per_second,
                         keys = acked:size() })
end)
