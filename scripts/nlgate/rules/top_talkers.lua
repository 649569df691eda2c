--[[ nlgate.rules.top_talkers: the heaviest talkers by bytes, per window.

Reports: every `window`, the `n` hosts (or pairs, or ports) that moved the
most bytes, from a gw.topk (space-saving heavy hitters: `k` tracked keys,
each count over by at most its `error`). From flow records (the packets
source with flows on: bytes both ways, at each flow's end or active
timeout), or from conntrack DESTROY events (orig_bytes + reply_bytes:
needs nf_conntrack_acct=1). The report is a frame tagged `tag` sent to
each of `outputs`, and/or handed to `on_report`; with `above` a key over
that many bytes in a window also raises an alert.

Records: flow; ct (destroy events).

Options (defaults):
  name       "top_talkers"
  by         "src"       "src", "dst", "pair" (src -> dst) or "dport"
  window     "1m"
  k          100         keys tracked (the sketch's size)
  n          10          keys reported
  outputs    {}          outputs the report is sent to (one or a list)
  tag        "top_talkers"
  on_report  nil         function(report)
  above      nil         bytes per window that raise alert.<name> (resolves
                         at half, or when the key drops out of the top)
  severity "warning"; every; on_alert

Report { window_start, window_end, by, top = { {key, bytes, error}, ... } }
(largest first; an empty window reports an empty top).
Alert alert.<name>, key = the talker: value (bytes), bytes, window.
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { by = "src", window = "1m", k = 100, n = 10, outputs = {},
               tag = "top_talkers", on_report = false, above = false, clear = false,
               hold = false }

local keyers = {
  src = { flow = function(f) return f.src end, ct = function(e) return e.orig_src end },
  dst = { flow = function(f) return f.dst end, ct = function(e) return e.orig_dst end },
  pair = { flow = function(f) return (f.src or "?") .. " -> " .. (f.dst or "?") end,
           ct = function(e) return (e.orig_src or "?") .. " -> " .. (e.orig_dst or "?") end },
  dport = { flow = function(f) return f.dport end, ct = function(e) return e.orig_dport end },
}

function M.new(opts)
  local o = rules.options("top_talkers", M.defaults, opts)
  local keyer = keyers[o.by]
  if not keyer then
    error("top_talkers: bad by '" .. tostring(o.by) .. "' (src, dst, pair, dport)", 2)
  end
  local outs = o.outputs
  if type(outs) ~= "table" or getmetatable(outs) ~= nil then outs = { outs } end
  local self = rules.object(M, o)
  self.key_flow, self.key_ct = keyer.flow, keyer.ct
  if o.above then
    o.clear = o.clear or o.above / 2
    self.threshold = rules.threshold(o)
  end
  local secs = rules.seconds(o.window)
  self.top = gw.topk { k = o.k, window = o.window, on_close = function(w)
    local top = {}
    for i, e in ipairs(w:top(o.n)) do
      top[i] = { key = e.key, bytes = e.value, error = e.error }
    end
    local report = { window_start = w:start(), window_end = w:finish(), by = o.by, top = top }
    for _, out in ipairs(outs) do out:send(o.tag, report) end
    if o.on_report then o.on_report(report) end
    if self.threshold then
      local seen = {}
      for _, e in ipairs(top) do
        seen[e.key] = true
        self.threshold:update(e.key, e.bytes, { bytes = e.bytes, window = secs })
      end
      rules.sweep(self.threshold, seen)
    end
  end }
  return self
end

function M:flow(f)
  local key, bytes = self.key_flow(f), f.bytes
  if key and bytes and bytes > 0 then self.top:add(key, bytes) end
end

function M:ct(e)
  if e.event ~= "destroy" then return end
  local bytes = (e.orig_bytes or 0) + (e.reply_bytes or 0)
  local key = self.key_ct(e)
  if key and bytes > 0 then self.top:add(key, bytes) end
end

return M
