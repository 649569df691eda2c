-- Case 8: whatever table a script sends, each frame is a well-formed
-- msgpack map or array that a strict decoder (python-msgpack, raw=False)
-- reads: keys that are tables (with or without __tostring), functions or
-- userdata are refused; metamethods do not change what is sent; strings
-- that are not UTF-8 go out as bin; and a table whose entries vanish while
-- it is being encoded (weak values collected, or entries removed by a
-- finalizer, mid-walk) still makes a map whose count matches its entries
-- (NLGT_VARIANT gcmutate or weak: each in a gateway of its own).
local H = require "hlib"
local gw, feed = H.gw, H.feed
local KEY = "a table key must be a string, number or boolean"

local tkey = setmetatable({}, { __tostring = function() return "k" end })
local attacks = {
  { "a key with __tostring", KEY .. ", not a table", function() feed:send("x", { [tkey] = 1 }) end },
  { "a key with a __tostring that mutates", KEY .. ", not a table", function()
      local t = { a = 1 }
      local k = setmetatable({}, { __tostring = function() for i = 1, 100 do t[i] = i end return "k" end })
      t[k] = 2
      feed:send("x", t) end },
  { "a table as key", KEY .. ", not a table", function() feed:send("x", { [{}] = 1 }) end },
  { "a function as key", KEY .. ", not a function", function() feed:send("x", { [print] = 1 }) end },
  { "a feed as key", KEY .. ", not a userdata", function() feed:send("x", { [feed] = 1 }) end },
  { "a coroutine as key", KEY .. ", not a thread", function() feed:send("x", { [coroutine.create(print)] = 1 }) end },
  { "a function value", "cannot encode a function value", function() feed:send("x", { f = print }) end },
  { "a feed as value", "cannot encode a userdata value", function() feed:send("x", { feed }) end },
  { "a bad key deep inside", KEY, function() feed:send("x", { a = { b = { c = { [{}] = 1 } } } }) end },
}

local lying = setmetatable({ a = 1 }, {
  __pairs = function() error("__pairs must not run") end,
  __len = function() return 99 end,
  __index = function() return "x" end,
  __tostring = function() return "lies" end,
})

-- frames that must go out, decodable and as sent (checked by the shell)
local function send_good()
  feed:send("mixed", { [1] = "a", [1.5] = "c", [true] = "d", x = { y = 1 } })
  feed:send("lying", lying)
  feed:send("bin", { s = "\xff\xfe\0abc", u = "é€" })
  feed:send("binkey", { ["\xff\xfe"] = 1, ok = "yes" })
  feed:send("holes", { 1, nil, 3 })
  feed:send("bintag", "\xff")
  H.result("GOOD sent")
end

-- entries that disappear while the table is encoded: number keys are turned
-- into text on the way (an allocation each), which runs the collector
local function weak_values()
  collectgarbage("incremental", 1, 1000, 1)
  local t, strong = setmetatable({}, { __mode = "v" }), {}
  for i = 1, 20000 do
    local v = {}
    strong[i], t[i + 0.5] = v, v
  end
  collectgarbage()
  strong = nil
  feed:send("weak", t)
  collectgarbage("incremental", 200, 100, 13)
  H.result("WEAK sent")
end

local function finalizer_removes()
  collectgarbage("incremental", 1, 1000, 1)
  local t = {}
  for i = 1, 20000 do t[i + 0.5] = i end
  -- finalizers that remove entries, if the sandbox lets one be made
  local made, why = 0, nil
  for i = 1, 200 do
    local obj, how = H.with_gc(function() for k = i * 100, i * 100 + 99 do t[k + 0.5] = nil end end)
    if obj then made = made + 1 else why = how end
  end
  gw.log("GCMUTATE finalizers made: " .. made .. (why and (" (" .. why .. ")") or ""))
  feed:send("gcmutate", t)
  collectgarbage("incremental", 200, 100, 13)
  H.result("GCMUTATE sent")
end

local variant = os.getenv("NLGT_VARIANT") or ""
if variant == "gcmutate" then
  gw.after("200ms", finalizer_removes)
elseif variant == "weak" then
  gw.after("200ms", weak_values)
else
  H.attacks(attacks, { done = send_good })
end
