-- Case 5: no script reaches the metatable of an nlgate object (feed, source,
-- timer, record view, batch): getmetatable is false, so __gc and friends
-- cannot be called by hand; methods called with the wrong self raise a clean
-- error; a closed object raises instead of touching freed state.
local H = require "hlib"
local gw, feed = H.gw, H.feed
local port = assert(tonumber(os.getenv("NLGT_PORT")), "NLGT_PORT")
local BOOL = "attempt to index a boolean value"

local src = gw.sockets { every = "50ms", proto = "tcp", states = "listen", sport = port }
local timer = gw.every("1h", function() end)
local closed_feed = gw.unix { path = os.getenv("NLGT_FEED") .. ".closed" }
closed_feed:close()
local closed_src = gw.sockets { every = "1h", proto = "udp", start = false }
closed_src:close()
local view_fn, batch_fn = {}, {} -- methods of a view and a batch, kept to call with a wrong self

local function hidden(x)
  return function()
    assert(getmetatable(x) == false, "getmetatable is not false")
    getmetatable(x).__gc(x)
  end
end

-- in the :each handler, for the first record
local view_probes
src:each(function(r)
  if view_probes then return end
  view_probes = true
  view_fn.table, view_fn.copy = r.table, r.copy
  H.probe({
    { "getmetatable(view).__gc", BOOL, hidden(r) },
    { "getmetatable(view).__index", BOOL, function() return getmetatable(r).__index end },
    { "view.__gc as a field", "has no field '__gc'", function() return r.__gc end },
    { "write a view", "read-only", function() r.state = "x" end },
    { "view method, wrong self", "nlgate.view expected", function() r.table(feed) end },
    { "view method, a number", "nlgate.view expected", function() r.copy(42) end },
    { "setmetatable(view)", "table expected", function() setmetatable(r, {}) end },
    { "rawset(view)", "table expected", function() rawset(r, "x", 1) end },
  }, "VIEW")
  getmetatable(r).__gc(r) -- unprotected: logged as an error of this handler
end)

local batch_probes
src:batch(function(b)
  if batch_probes then return end
  batch_probes = true
  batch_fn.records, batch_fn.stats = b.records, b.stats
  H.probe({
    { "getmetatable(batch).__gc", BOOL, hidden(b) },
    { "batch method, wrong self", "nlgate.batch expected", function() b.records(feed) end },
    { "batch method, a string", "nlgate.batch expected", function() b.stats("x") end },
    { "write a batch", "index a nlgate.batch value", function() b[1] = 1 end },
  }, "BATCH")
end)

local attacks = {
  { "getmetatable(feed).__gc", BOOL, hidden(feed) },
  { "getmetatable(source).__gc", BOOL, hidden(src) },
  { "getmetatable(timer).__gc", BOOL, hidden(timer) },
  { "getmetatable(io.stdout).__gc", BOOL, hidden(io.stdout) },
  { "feed.send(42, ...)", "nlgate.output expected, got number", function() feed.send(42, "x", {}) end },
  { "feed.send(source, ...)", "nlgate.output expected", function() feed.send(src, "x", {}) end },
  { "feed.send({}, ...)", "nlgate.output expected", function() feed.send({}, "x", {}) end },
  { "feed.close(timer)", "nlgate.output expected", function() feed.close(timer) end },
  { "feed.stats(nil)", "nlgate.output expected", function() feed.stats() end },
  { "feed:send without a tag", "string expected, got nil", function() feed:send(nil, {}) end },
  { "src.poll(feed)", "nlgate.source expected", function() src.poll(feed) end },
  { "src.close(42)", "nlgate.source expected", function() src.close(42) end },
  { "src.each(feed, f)", "nlgate.source expected", function() src.each(feed, print) end },
  { "src:each(not a function)", "function expected", function() src:each(42) end },
  { "timer.cancel(feed)", "nlgate.timer expected", function() timer.cancel(feed) end },
  { "view method on a feed", "nlgate.view expected", function() view_fn.table(feed) end },
  { "view method on a timer", "nlgate.view expected", function() view_fn.copy(timer) end },
  { "batch method on a source", "nlgate.batch expected", function() batch_fn.records(src) end },
  { "batch method on nil", "nlgate.batch expected", function() batch_fn.stats() end },
  { "send on a closed feed", "output is closed", function() closed_feed:send("x", {}) end },
  { "poll a closed source", "source is closed", function() closed_src:poll() end },
  { "each on a closed source", "source is closed", function() closed_src:each(print) end },
  { "setmetatable(feed)", "table expected", function() setmetatable(feed, {}) end },
  { "rawset(source)", "table expected", function() rawset(src, "poll", print) end },
}

-- wait for the handlers to have seen a record, then attack from a timer
local start
start = gw.every("50ms", function()
  if not (view_probes and batch_probes) then return end
  start:cancel()
  H.attacks(attacks, { done = function()
    closed_feed:close() -- closing again is harmless
    closed_src:close()
    H.result("META", feed:stats().open, src:stats().open, closed_feed:stats().open,
             closed_src:stats().open)
  end })
end)
