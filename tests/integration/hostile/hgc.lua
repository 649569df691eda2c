-- with_gc(fn): a fresh table whose __gc finalizer is fn, however the sandbox
-- lets one be made (scripts may not have finalizers: they run with hooks
-- off, where the budget cannot stop them). Returns the table and "plain"
-- (setmetatable took the __gc) or "planted" (the __gc appeared in the
-- metatable while setmetatable looked it up, through the metatable's own
-- __index); or nil and why not. Makes nothing else: a script may require it
-- before anything it wants finalized after.
return function(fn)
  local ok, obj = pcall(setmetatable, {}, { __gc = fn })
  if ok then return obj, "plain" end
  local why = obj
  local mt = setmetatable({}, { __index = function(t, k)
    if k == "__gc" then rawset(t, "__gc", fn) end
  end })
  ok, obj = pcall(setmetatable, {}, mt)
  if ok and rawget(mt, "__gc") then return obj, "planted" end
  return nil, tostring(why) .. " / " .. tostring(obj)
end
