-- Case 7: values too big to send, or to hold, are refused quickly and the
-- loop stays responsive: a DAG of 2^26 nodes in a few bytes of Lua, deep
-- and cyclic tables, huge strings and arrays; a memory bomb hits the script's
-- memory limit (run with --mem-limit 64).
local H = require "hlib"
local gw, feed = H.gw, H.feed

local function dag(levels)
  local t = {}
  for _ = 1, levels do t = { t, t } end
  return t
end

local attacks = {
  { "a DAG of 2^26 nodes", "value too large", function() feed:send("x", dag(26)) end },
  { "a DAG as map values", "value too large", function()
      local t = {}
      for _ = 1, 26 do t = { a = t, b = t } end
      feed:send("x", t) end },
  { "100 levels deep", "nested too deeply", function()
      local t = {}
      for _ = 1, 100 do t = { t } end
      feed:send("x", t) end },
  { "a cycle through an array", "nested too deeply", function()
      local t = {}
      t[1] = t
      feed:send("x", t) end },
  { "a cycle through a map", "nested too deeply", function()
      local a, b = {}, {}
      a.b, b.a = b, a
      feed:send("x", { a = a }) end },
  { "a 20 MiB string", "value too large", function() feed:send("x", string.rep("x", 20 << 20)) end },
  { "1.1 million values", "value too large", function()
      local t = {}
      for i = 1, 1100000 do t[i] = i end
      feed:send("x", t) end },
  { "a DAG inside a map", "value too large", function()
      feed:send("x", { state = dag(24) }) end },
}

local function timed_dag()
  local d = dag(26)
  local c = os.clock()
  local ok, err = pcall(feed.send, feed, "x", d)
  return ok, os.clock() - c, err
end

H.attacks(attacks, {
  every = "50ms",
  done = function()
    local ok, secs, err = timed_dag()
    H.result("DAG", ok, secs < 0.5, string.format("%.3f", secs), err)
    -- a memory bomb: the script's limit stops it (not a file:line error:
    -- Lua raises out of memory without a message handler)
    gw.after("50ms", function()
      gw.log("BOMB start")
      local chunk, t = string.rep("0123456789abcdef", 1 << 16), {} -- 1 MiB
      while true do t[#t + 1] = chunk .. #t end
    end)
    gw.after("150ms", function()
      gw.log("BOMB huge string.rep")
      local s = string.rep("x", 1 << 30) -- 1 GiB
      gw.log("BOMB SURVIVED", #s)
    end)
    gw.after("250ms", function()
      -- the limit freed what the bomb held: ordinary work goes on
      local t = {}
      for i = 1, 100000 do t[i] = tostring(i) end
      H.result("AFTER", #t, gw.stats().script.out_of_memory)
    end)
  end,
})
