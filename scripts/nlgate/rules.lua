-- The rule library's front: rules.attach composes rule objects on one source
-- (a source has one :each and one :batch handler), plus the helpers every
-- rule module under scripts/nlgate/rules/ shares, and the original small
-- functions over socket records (rules.backlog, ...) kept for older scripts.
--
-- A rule object (see scripts/nlgate/rules/*.lua, each documented in its
-- header) is a table with any of these methods:
--   rule:sock(s)  rule:ct(e)  rule:flow(f)  rule:pkt(p)   one per record kind
--   rule:done(kind, batch)    after each poll (conntrack: each read step)
--   rule:attach(src)          once, when attached to a source
-- and a `name`. Compose them:
--   rules.attach(socks, { retrans, rtt, listeners }, { each = fn, batch = fn })
-- `each` and `batch` are the script's own handlers: `each` runs before the
-- rules see a record, `batch` after their `done` (so what they raised in this
-- poll is known to it). `kind` names the source's record kind ("sock", "ct",
-- "flow", "pkt"); without it the first record tells. attach sets the
-- source's handlers: attach once per source, with every rule it should run.
local gw = require "nlgate"

local rules = {}

-- ---- composition ---------------------------------------------------------

function rules.attach(src, list, opts)
  opts = opts or {}
  local all = {}
  for i, r in ipairs(list) do
    if type(r) ~= "table" then error("rules.attach: rule " .. i .. " is not a rule object", 2) end
    all[i] = r
    if r.attach then r:attach(src) end
  end
  local kind, hs, n = nil, {}, 0
  local function bind(k)
    kind, hs, n = k, {}, 0
    for _, r in ipairs(all) do
      if r[k] then n = n + 1; hs[n] = r end
    end
  end
  if opts.kind then bind(opts.kind) end
  local each, batch = opts.each, opts.batch
  src:each(function(rec)
    if each then each(rec) end
    if not kind then bind(rec:kind()) end
    local k = kind
    for i = 1, n do
      local r = hs[i]
      r[k](r, rec)
    end
  end)
  src:batch(function(b)
    if not kind and #b > 0 then bind(b[1]:kind()) end
    for _, r in ipairs(all) do
      if r.done then r:done(kind, b) end
    end
    if batch then batch(b) end
  end)
  return src
end

-- ---- helpers for rule modules ------------------------------------------

-- Options: a copy of defaults overlaid with opts; an unknown name raises
-- (like the sources' option tables). A default of `false` means "unset".
-- Options every rule takes: name, severity, every, message, on_alert.
local common = { name = true, severity = true, every = true, on_alert = true, message = true }

function rules.options(rule, defaults, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(rule .. ": options must be a table", 3)
  end
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil and not common[k] then
      error(string.format("%s: unknown option '%s'", rule, tostring(k)), 3)
    end
    o[k] = v
  end
  o.name = o.name or rule
  o.severity = o.severity or "warning"
  return o
end

-- A duration ("500ms", "10s", "5m", "2h", "1d" or seconds) in seconds.
local units = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, [""] = 1 }
function rules.seconds(d)
  if type(d) == "number" then return d end
  local n, u = tostring(d):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local f = u and units[u]
  if not n or not f or not tonumber(n) then error("bad duration '" .. tostring(d) .. "'", 3) end
  return tonumber(n) * f
end

-- "addr:port", with brackets for IPv6.
function rules.endpoint(addr, port)
  addr = addr or "*"
  if addr:find(":", 1, true) then addr = "[" .. addr .. "]" end
  return port and (addr .. ":" .. port) or addr
end

-- A port set from { 22, 443, "8000-8099" } (or "22,443,8000-8099").
function rules.ports(list)
  local set, ranges = {}, {}
  if type(list) == "string" then
    local t = {}
    for item in list:gmatch("[^,%s]+") do t[#t + 1] = item end
    list = t
  end
  for _, p in ipairs(list or {}) do
    local a, b = tostring(p):match("^(%d+)%-(%d+)$")
    if a then
      ranges[#ranges + 1] = { tonumber(a), tonumber(b) }
    elseif tonumber(p) then
      set[tonumber(p)] = true
    else
      error("bad port '" .. tostring(p) .. "'", 3)
    end
  end
  return function(port)
    if set[port] then return true end
    for _, r in ipairs(ranges) do
      if port >= r[1] and port <= r[2] then return true end
    end
    return false
  end
end

-- A gw.threshold from a rule's options (above/below, clear, hold, expire,
-- severity, every, message), with the rule's on_alert called on fire and clear.
function rules.threshold(o, extra)
  local t = {
    name = o.name, severity = o.severity, every = o.every or nil,
    above = o.above or nil, below = o.below or nil, clear = o.clear or nil,
    hold = o.hold or nil, message = o.message or nil, expire = o.expire or nil,
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  if o.on_alert then
    local cb = o.on_alert
    t.on_fire = function(key, value, fields)
      cb { name = o.name, state = "firing", key = key, value = value, fields = fields }
    end
    t.on_clear = function(key, value, fields)
      cb { name = o.name, state = "resolved", key = key, value = value, fields = fields }
    end
  end
  return gw.threshold(t)
end

-- A one-shot alert (no resolve) from a rule: gw.alert plus on_alert.
function rules.alert(o, key, message, fields)
  local sent = gw.alert { name = o.name, severity = o.severity, every = o.every or nil,
                          key = key, message = message, fields = fields }
  if sent and o.on_alert then
    o.on_alert { name = o.name, state = "firing", key = key, message = message, fields = fields }
  end
  return sent
end

-- Keys firing in threshold t but absent from `seen` (a set) get `value`
-- (default 0): a peer or port that went away resolves.
function rules.sweep(t, seen, value)
  local gone = {}
  for _, k in ipairs(t:firing()) do
    if not seen[k] then gone[#gone + 1] = k end
  end
  for _, k in ipairs(gone) do t:update(k, value or 0) end
end

-- A rule module's object: methods from the module table M.
function rules.object(M, o)
  return setmetatable({ name = o.name, opts = o }, { __index = M })
end

-- ---- the original functions (plain, per record; kept for older scripts) --

rules.defaults = {
  rtt_us = 200000,        -- smoothed RTT above 200 ms
  retrans_delta = 10,     -- more than 10 segments retransmitted since last poll
  backlog_ratio = 0.9,    -- listener accept queue at 90 % of its limit
  rqueue_bytes = 4 << 20, -- 4 MiB unread in a receive queue
}

-- A listener whose accept queue is nearly full drops new connections.
function rules.backlog(s, t)
  if s.state == "LISTEN" and s.wqueue and s.wqueue > 0
     and s.rqueue >= s.wqueue * (t or rules.defaults).backlog_ratio then
    return string.format("accept queue %d of %d", s.rqueue, s.wqueue)
  end
end

function rules.slow_rtt(s, t)
  local rtt = s.rtt_us
  if rtt and s.state == "ESTAB" and rtt > (t or rules.defaults).rtt_us then
    return string.format("rtt %.1f ms", rtt / 1000)
  end
end

function rules.rqueue(s, t)
  if s.rqueue and s.state ~= "LISTEN" and s.rqueue > (t or rules.defaults).rqueue_bytes then
    return string.format("%d bytes unread", s.rqueue)
  end
end

-- Retransmits since the previous poll; `seen` maps socket cookie → count.
function rules.retrans(s, seen, t)
  local total = s.total_retrans
  if not total then return nil end
  local key = s.cookie
  local before = seen[key]
  seen[key] = total
  if before and total - before > (t or rules.defaults).retrans_delta then
    return string.format("%d retransmits since last poll", total - before)
  end
end

-- Keep the n largest by key(s) in `top` (a small array, largest first).
-- A record view is copied on entry only, so it outlives its handler.
function rules.top(top, n, s, key)
  local v = key(s)
  if not v then return end
  if #top == n and v <= top[n].v then return end
  local entry = { v = v, s = type(s) == "userdata" and s:copy() or s }
  local i = #top + 1
  while i > 1 and top[i - 1].v < v do i = i - 1 end
  table.insert(top, i, entry)
  if #top > n then top[#top] = nil end
end

return rules
