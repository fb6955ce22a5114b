-- Argo CD health check for plinth.dev/ModelDeployment (key: resource.customizations.health.plinth.dev_ModelDeployment).
-- Plinth status follows kstatus: a stale status (observedGeneration < generation) says nothing about the current
-- spec, Stalled=True or a negative-polarity condition (Conflict, TotalExceeded, QuotaExceeded) means someone must
-- act, and Ready=True counts only at the current generation. A canary that failed its health gate
-- (CanaryHealthy=False) is Degraded even though the stable version keeps serving.
local hs = {}
local function find(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end
local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason or c.type
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Plinth operator to report status"
  return hs
end
local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Plinth operator to observe generation " .. generation .. " (status describes " .. observed .. ")"
  return hs
end
local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
for _, kind in ipairs({"Conflict", "TotalExceeded", "QuotaExceeded"}) do
  local c = find(conditions, kind)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(c)
    return hs
  end
end
local canary = find(conditions, "CanaryHealthy")
if canary ~= nil and canary.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(canary)
  return hs
end
local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" and (ready.observedGeneration == nil or ready.observedGeneration == generation) then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end
hs.status = "Progressing"
if ready == nil then
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.message = "Ready describes generation " .. ready.observedGeneration .. ", not " .. generation
else
  hs.message = describe(ready)
end
return hs
