{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "mljob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, plus the chart name unless the release contains it. */}}
{{- define "mljob-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels selecting the operator pods (never change them: selectors are immutable). */}}
{{- define "mljob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mljob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels on every object of the release. */}}
{{- define "mljob-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mljob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mljob-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mljob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mljob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to the appVersion. */}}
{{- define "mljob-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mljob-operator.peeringName" -}}
{{- default (include "mljob-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/* The kopf peering names: one per shard (the operator joins <peeringName>-shard-<i> when
given --shard i of N > 1), else the one peeringName. */}}
{{- define "mljob-operator.peeringNames" -}}
{{- $base := include "mljob-operator.peeringName" . }}
{{- if gt (int .Values.shards) 1 }}
{{- range $shard := until (int .Values.shards) }}
- {{ $base }}-shard-{{ $shard }}
{{- end }}
{{- else }}
- {{ $base }}
{{- end }}
{{- end }}

{{/* Whether the operator runs with kopf peering (active/standby replicas). */}}
{{- define "mljob-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
The namespace-scoped rules: exactly the API calls the operator makes (operator/mljob/kube.py,
operator/mljob/handlers.py) and kopf makes for it. Shared by the ClusterRole (cluster-wide) and
the per-namespace Roles (watchNamespaces).
*/}}
{{- define "mljob-operator.namespacedRules" -}}
# MLJobs: kopf lists and watches them (index + event handlers); the operator writes an MLJob
# only as a ScheduledMLJob's run (below).
- apiGroups: [mljob.io]
  resources: [mljobs]
  verbs: [list, watch]
# ... and merge-patches only their status subresource.
- apiGroups: [mljob.io]
  resources: [mljobs/status]
  verbs: [patch]
# The children: watched (indexes + event handlers), created (one per step attempt), read back
# when a create answers 409 (to adopt it only if this MLJob owns it), deleted (TTL, cancelled
# runs, the shared RayCluster). Never their status.
- apiGroups: [sparkoperator.k8s.io]
  resources: [sparkapplications]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [ray.io]
  resources: [rayjobs]
  verbs: [get, list, watch, create, delete, patch]
# Children, the shared RayCluster included, are patched only to follow spec.suspend (the one
# field they take without a restart).
- apiGroups: [ray.io]
  resources: [rayclusters]
  verbs: [get, list, watch, create, delete, patch]
# Serve steps' RayServices: created, read and JSON-patched in place by a later run (its spec,
# labels and annotations), deleted when the step leaves the spec or a first deployment failed.
- apiGroups: [ray.io]
  resources: [rayservices]
  verbs: [get, list, watch, create, delete, patch]
# ScheduledMLJobs: watched (index + event handlers) and their status merge-patched; never
# written otherwise.
- apiGroups: [mljob.io]
  resources: [scheduledmljobs]
  verbs: [list, watch]
- apiGroups: [mljob.io]
  resources: [scheduledmljobs/status]
  verbs: [patch]
# Their runs are MLJobs: created (one per firing), read back when a create answers 409 (to
# adopt it only if the schedule owns it), deleted (history limits, concurrencyPolicy Replace).
- apiGroups: [mljob.io]
  resources: [mljobs]
  verbs: [get, create, delete]
# Events on MLJobs and ScheduledMLJobs (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* The operator's ServiceAccount as an RBAC subject. */}}
{{- define "mljob-operator.subject" -}}
- kind: ServiceAccount
  name: {{ include "mljob-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The Secret holding the webhook's serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "mljob-operator.webhookSecretName" -}}
{{ include "mljob-operator.fullname" . }}-webhook-tls
{{- end }}

{{/* The webhook Service's DNS name, the name the serving certificate is for. */}}
{{- define "mljob-operator.webhookHost" -}}
{{ include "mljob-operator.fullname" . }}-webhook.{{ .Release.Namespace }}.svc
{{- end }}
