-- Argo CD health check for mljob.io/ScheduledMLJob, mapping the operator's status contract:
--   status missing, or status.observedGeneration < metadata.generation -> Progressing
--   condition Stalled=True (invalid spec)                               -> Degraded (its message)
--   spec.suspend: true                                                  -> Suspended
--   the newest finished run failed (status.lastRun.phase Failed)        -> Degraded
--   anything else (runs active or not)                                  -> Healthy
-- A schedule with a run in progress is Healthy: the schedule itself is fine, and a nightly
-- Application must not turn Progressing every night. Lua 5.1 in gopher-lua, base and table
-- libraries only (no string library): `..` joins text.

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function next_run(status)
  if status.nextScheduleTime ~= nil then
    return "next run at " .. tostring(status.nextScheduleTime)
  end
  return "no next run"
end

local hs = {}
local status = obj.status

if status == nil or status.observedGeneration == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the mljob-operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the mljob-operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = tostring(stalled.message)
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended (spec.suspend is true)"
  return hs
end

if status.lastRun ~= nil and status.lastRun.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Last run " .. tostring(status.lastRun.name) .. " failed"
  if status.lastRun.message ~= nil then
    hs.message = hs.message .. ": " .. tostring(status.lastRun.message)
  end
  return hs
end

hs.status = "Healthy"
hs.message = next_run(status)
if status.active ~= nil and #status.active > 0 then
  hs.message = hs.message .. ", " .. tostring(#status.active) .. " run(s) active"
end
if status.lastRun ~= nil then
  hs.message = hs.message .. ", last run " .. tostring(status.lastRun.name) .. " " .. tostring(status.lastRun.phase)
end
return hs
