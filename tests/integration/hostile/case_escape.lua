-- Case 4, code that Lua runs with hooks off, where the count hook behind the
-- budget (run with --budget 1000000) cannot reach it unless nlgate sees to
-- it. NLGT_VARIANT picks one; each must end like any budget kill (or be
-- refused outright): the handler stopped with a logged error, the gateway
-- going on.
--   gc:         a __gc finalizer that never returns, run by the collector
--               inside a handler;
--   gcplant:    the same, its __gc planted in the metatable by the
--               metatable's own __index while setmetatable looks for it;
--   xpcall:     a message handler that never returns, called for the
--               budget's own error (raised from inside the hook);
--   wrapclose:  a to-be-closed variable whose __close never returns, in a
--               coroutine.wrap killed by the budget (the wrap closes the
--               dead coroutine, on which the hook raised);
--   closelater: the same coroutine killed in one handler call and closed
--               with coroutine.close in a later one;
--   gcclose:    a __gc finalizer that never returns, run when the state
--               closes at a reload or at exit (outside any handler call):
--               logs "ARMED <how>" or "ARMED none <why>" (see H.with_gc).
local H = require "hlib"
local gw = H.gw
local which = os.getenv("NLGT_VARIANT")
local STOPPED = "instruction budget exceeded || handler stopped"
local NOGC = "finalizers are not allowed || " .. STOPPED
local NOCLOSE = "__close metamethods are not allowed || " .. STOPPED

local function spin() while true do end end
local function closing() return setmetatable({}, { __close = spin }) end

if which == "gcclose" then
  -- finalized when the state closes: at SIGHUP (the old state) or SIGTERM
  local how
  bomb, how = H.with_gc(spin)
  H.result("ARMED " .. (bomb and how or ("none " .. how)))
  return
end

local co
local variants = {
  gc = { { "a looping __gc finalizer", NOGC, function()
      setmetatable({}, { __gc = spin })
      collectgarbage()
    end } },
  gcplant = { { "a looping __gc planted during setmetatable", NOGC .. " || no finalizer planted",
    function()
      local mt = setmetatable({}, { __index = function(t, k)
        if k == "__gc" then rawset(t, "__gc", spin) end
      end })
      setmetatable({}, mt)
      collectgarbage()
      -- here only if no looping finalizer ran: the defence held
      error("no finalizer planted")
    end } },
  xpcall = { { "xpcall with a looping message handler", STOPPED, function()
      xpcall(spin, spin)
    end } },
  wrapclose = { { "a looping __close in a killed coroutine.wrap", NOCLOSE, function()
      coroutine.wrap(function()
        local guard <close> = closing()
        spin()
      end)()
    end } },
  closelater = {
    { "kill a coroutine holding a looping __close", NOCLOSE, function()
        co = coroutine.create(function()
          local guard <close> = closing()
          spin()
        end)
        local ok, err = coroutine.resume(co)
        if not ok then error(err, 0) end
      end },
    { "coroutine.close it in a later call", "closed: || " .. STOPPED, function()
        local ok, err = coroutine.close(co)
        error("closed: " .. tostring(ok) .. " " .. tostring(err))
      end },
  },
}
local list = assert(variants[which], "NLGT_VARIANT: gc, gcplant, xpcall, wrapclose, closelater or gcclose")
H.attacks(list, {
  every = "200ms",
  done = function() H.result("ESCAPE AFTER", gw.stats().script.budget_kills) end,
})
