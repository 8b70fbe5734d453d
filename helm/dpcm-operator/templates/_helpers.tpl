{{/* The chart name, shortened to the 63 characters a label value allows. */}}
{{- define "dpcm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects. A release whose name contains the chart
name uses the release name as is: release "dpcm-operator" gives "dpcm-operator".
*/}}
{{- define "dpcm-operator.fullname" -}}
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

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "dpcm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "dpcm-operator.labels" -}}
helm.sh/chart: {{ include "dpcm-operator.chart" . }}
{{ include "dpcm-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dpcm
{{- end }}

{{/* The labels the Deployment selects its pods by (immutable after install). */}}
{{- define "dpcm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dpcm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "dpcm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dpcm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; the tag defaults to the chart's appVersion. */}}
{{- define "dpcm-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The dpcm-agent sidecar's image: agent.image, else the operator's (which holds the agent). */}}
{{- define "dpcm-operator.agentImage" -}}
{{- if .Values.agent.image.repository }}
{{- printf "%s:%s" .Values.agent.image.repository (default .Chart.AppVersion .Values.agent.image.tag) }}
{{- else }}
{{- include "dpcm-operator.image" . }}
{{- end }}
{{- end }}

{{/*
The operator's rules: exactly the calls dpcm-operator makes in a namespace it watches.
The same rules as manifests/rbac/role.yaml (tests/e2e/deploy_test.cpp checks), where each
rule names the code that needs it. Granted cluster-wide (ClusterRole) when every namespace
is watched, or by a Role in each of watchNamespaces.
*/}}
{{- define "dpcm-operator.rules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [create, delete, list, update, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [dpcm.io]
  resources: [processdomains]
  verbs: [get, list, watch]
- apiGroups: [dpcm.io]
  resources: [processdomains/status]
  verbs: [update]
- apiGroups: [dpcm.io]
  resources: [processdomains/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create, delete, get]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, delete, get, update]
{{- end }}

{{/* policy/v1 where the cluster serves it (Kubernetes 1.21+), else policy/v1beta1 (1.20). */}}
{{- define "dpcm-operator.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1" -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end }}
{{- end }}
