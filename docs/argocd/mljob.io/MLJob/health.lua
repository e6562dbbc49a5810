-- Argo CD health check for mljob.io/MLJob, mapping the operator's status contract:
--   status missing, or status.observedGeneration < metadata.generation  -> Progressing
--   phase Succeeded (Ready=True, Succeeded=True)                        -> Healthy
--   phase Failed / condition Stalled=True                               -> Degraded (its message)
--   phase Suspended (spec.suspend: true)                                -> Suspended
--   phase Pending or Running, anything else                             -> Progressing
-- Healthy and Degraded also name the models serve steps serve (status.serving): a failed run
-- (a failed update included) leaves an older run's model live.
-- Argo CD runs it in gopher-lua (Lua 5.1). It uses the base and table libraries only: no string
-- library (no string.format, no ("..."):method()), only `..` to join text.

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

local function describe(status)
  local text = "phase " .. tostring(status.phase)
  if status.progress ~= nil then
    text = text .. ", " .. tostring(status.progress) .. " steps done"
  end
  if status.currentStep ~= nil and status.currentStep ~= "" then
    text = text .. ", at " .. tostring(status.currentStep)
  end
  return text
end

-- "; step S serves run N's model at URL" per serving RayService (status.serving); with `older`,
-- only those whose model is not the current run's.
local function serving(status, older)
  local text = ""
  if status.serving == nil then
    return text
  end
  for _, s in ipairs(status.serving) do
    if not older or s.liveRun ~= status.run then
      text = text .. "; step " .. tostring(s.step) .. " serves run " .. tostring(s.liveRun)
      text = text .. "'s model at " .. tostring(s.url)
    end
  end
  return text
end

local hs = {}
local status = obj.status

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the mljob-operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the mljob-operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
if status.phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.message ~= nil then
    hs.message = stalled.message
  elseif status.message ~= nil then
    hs.message = status.message
  else
    hs.message = "MLJob failed"
  end
  hs.message = hs.message .. serving(status, true)
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Pipeline succeeded"
  if status.progress ~= nil then
    hs.message = hs.message .. " (" .. tostring(status.progress) .. " steps)"
  end
  hs.message = hs.message .. serving(status, false)
  return hs
end

if status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "Suspended (spec.suspend is true), " .. describe(status)
  return hs
end

hs.status = "Progressing"
hs.message = describe(status)
return hs
