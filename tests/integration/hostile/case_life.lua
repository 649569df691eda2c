-- Case 6: object lifetimes a script can twist (run under ASan too):
--   a source closed inside its own :each, :batch and filter, then dropped;
--   a timer cancelled inside its own handler, dropped, collected there;
--   src:poll() from a coroutine that is then dropped and collected;
--   record views and batches kept past their handler;
--   objects made inside a __gc that runs at reload or exit (and a __gc that
--   uses objects already finalized, or polls a source while the state
--   closes), if a finalizer can be made at all.
-- After SIGHUP the same file runs again (gw.state.gen 2): only the __gc part.

-- Scripts may not have finalizers (they run where the budget cannot stop
-- them); hgc makes one anyway if the sandbox lets it ("BOMBS <how> <how>",
-- or "none" and why not). Finalized last when the state closes: everything
-- below is finalized before it.
local with_gc = require "hgc"
local early_how
early_bomb, early_how = with_gc(function()
  local H = _G.H
  if not H then return end
  local gw = H.gw
  local function try(name, f, ...)
    local ok, err = pcall(f, ...)
    gw.log("GCLATE " .. name .. " " .. (ok and "ALLOWED" or ("refused: " .. tostring(err))))
  end
  try("send on a finalized feed", H.feed.send, H.feed, "gc", {})
  try("poll a finalized source", H.src.poll, H.src)
  try("cancel a finalized timer", H.ticker.cancel, H.ticker)
  gw.log("GCLATE DONE")
end)

H = require "hlib"
local gw, feed = H.gw, H.feed
local port = assert(tonumber(os.getenv("NLGT_PORT")), "NLGT_PORT")
local gcpath = os.getenv("NLGT_FEED") .. ".gc"
gw.state.gen = (gw.state.gen or 0) + 1
local gen = gw.state.gen
H.src = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
H.src:each(function() end)

-- Finalized first when the state closes: every constructor must refuse.
local late_how
late_bomb, late_how = with_gc(function()
  local function try(name, f, ...)
    local ok, err = pcall(f, ...)
    gw.log("GC " .. name .. " " .. (ok and "ALLOWED" or ("refused: " .. tostring(err))))
  end
  try("gw.every", gw.every, "10ms", function() gw.log("GC TIMER FIRED") end)
  try("gw.after", gw.after, "10ms", function() gw.log("GC TIMER FIRED") end)
  try("gw.unix", gw.unix, { path = gcpath })
  try("gw.sockets", gw.sockets, { every = "10ms", proto = "tcp" })
  -- a poll while the state closes: the handlers run (or are refused), no crash
  local ok, err = pcall(H.src.poll, H.src)
  gw.log("GC poll while closing: " .. tostring(ok) .. " " .. tostring(err))
  gw.every("10ms", function() end) -- unprotected: an error in __gc, nothing more
end)
gw.log("BOMBS " .. (early_bomb and early_how or "none") .. " " ..
       (late_bomb and late_how or ("none " .. late_how)))
gw.log("GEN " .. gen)
if gen > 1 then
  H.result("GEN", gen)
  return
end

local function log(...) gw.log("LIFE", ...) end
local state = {}

-- a source closed inside its own :each handler, dropped and collected there
local s1 = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
local s1_calls, s1_port = 0, nil
s1:each(function(r)
  s1_calls = s1_calls + 1
  s1:close()
  s1_port = r.sport -- the record is still ours for this call
  state.s1 = s1
  s1 = nil
  collectgarbage()
  collectgarbage()
end)

-- ... inside its own :batch handler, reading its records after the close
local s2 = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
local s2_calls, s2_seen = 0, 0
s2:batch(function(b)
  s2_calls = s2_calls + 1
  s2:close()
  for _, r in b:records() do if r.sport == port then s2_seen = s2_seen + 1 end end
  s2 = nil
  collectgarbage()
end)

-- ... inside its filter
local s3
local s3_calls = 0
s3 = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port,
                  filter = function(r) s3_calls = s3_calls + 1 s3:close() return true end }
s3:each(function() state.s3_each = true end)
s3:batch(function() state.s3_batch = true end)

-- a timer cancelled inside its own handler, its last reference dropped and
-- collected in the handler; and a one-shot doing the same
local t1_calls, t2_calls = 0, 0
local t1
t1 = gw.every("20ms", function()
  t1_calls = t1_calls + 1
  t1:cancel()
  t1 = nil
  collectgarbage()
  collectgarbage()
end)
local t2
t2 = gw.after("30ms", function()
  t2_calls = t2_calls + 1
  t2:cancel()
  t2 = nil
  collectgarbage()
end)

-- src:poll() from a coroutine, which is then dropped and collected; the
-- loop's own polls go on delivering on the main thread afterwards
local p = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
local p_calls, p_in_co, p_after = 0, 0, 0
local polled_in_co, yielded = false, false
p:each(function(r)
  p_calls = p_calls + 1
  local _, main = coroutine.running()
  if not main then
    p_in_co = p_in_co + 1
    if polled_in_co == "yield" then
      yielded = true
      coroutine.yield("from a handler") -- across the C poll: an error, logged
    end
  elseif polled_in_co then
    p_after = p_after + 1
  end
end)

-- views and batches kept past their handler
local kept = {}
local k = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
k:each(function(r) kept.each = kept.each or r end)
k:batch(function(b)
  if kept.batch then return end
  kept.batch = b
  for _, r in b:records() do kept.view = r break end
  kept.iter, kept.iter_state, kept.iter_ctl = b:records()
  kept.copy = b[1]
end)

local steps = {}
local step = 0
steps[#steps + 1] = function() -- let the sources deliver
  return s1_calls > 0 and s2_calls > 0 and s3_calls > 0 and kept.view and p_calls > 0
end
steps[#steps + 1] = function()
  local co = coroutine.wrap(function() return p:poll() end)
  local n = co()
  polled_in_co = true
  co = nil
  collectgarbage()
  collectgarbage()
  log("polled in a coroutine", n)
  return true
end
steps[#steps + 1] = function()
  polled_in_co = "yield"
  local co = coroutine.create(function() return p:poll() end)
  local ok, n = coroutine.resume(co)
  log("poll in a coroutine whose handler yields:", ok, n, coroutine.status(co))
  co = nil
  collectgarbage()
  polled_in_co = true
  return true
end
steps[#steps + 1] = function() return p_after >= 2 end -- the loop's polls, on the main thread
steps[#steps + 1] = function()
  H.result("LIFE", s1_calls, s1_port == port, state.s1:stats().open, s2_calls, s2_seen,
           s3_calls, state.s3_each == true, state.s3_batch == true, t1_calls, t2_calls,
           p_in_co >= 2, yielded, p_after >= 2)
  -- kept views: every use raises, none reads freed memory
  H.attacks({
    { "read a kept view from batch:records()", "used after its handler returned", function() return kept.view.sport end },
    { "tostring of a kept view", "used after its handler returned", function()
        local ok, e = pcall(tostring, kept.view) -- raised in C: rethrown with this line
        if not ok then error(e) end end },
    { "table() of a kept view", "used after its handler returned", function() return kept.view:table() end },
    { "send a kept view", "used after its handler returned", function() feed:send("kept", kept.view) end },
    { "send a table holding a kept view", "used after its handler returned", function() feed:send("kept", { kept.view }) end },
    { "read a kept :each view", "used after its handler returned", function() return kept.each.state end },
    { "copy of a kept :each view", "used after its handler returned", function() return kept.each:copy() end },
    { "a kept records() iterator", "used after its handler returned", function()
        local _, v = kept.iter(kept.iter_state, kept.iter_ctl)
        assert(v == nil, "the kept iterator gave a record")
        return kept.view.src end },
    { "each on a source closed in its handler", "source is closed", function() state.s1:each(print) end },
  }, { done = function()
    H.result("KEPT", #kept.batch, kept.batch[1] == nil, kept.copy.sport == port)
    feed:send("copy", kept.copy) -- an owned copy stays good
  end })
  return true
end
local runner
runner = gw.every("30ms", function()
  if step >= #steps then runner:cancel() return end
  if steps[step + 1]() then step = step + 1 end
end)
