{{/* Labels of this chart's own objects: dict "root" $ "part" "agent-credential". */}}
{{- define "prfix.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "prfix-%s" .part }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "prfix.labels" -}}
{{ include "prfix.selectorLabels" . }}
app.kubernetes.io/component: {{ .part }}
app.kubernetes.io/part-of: prfix
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* What the hook needs to know of the agent and gateway releases, from their values here. */}}
{{- define "prfix.agentName" -}}
{{- required "prfix-agent.fullnameOverride: the agent's object name" (index .Values "prfix-agent" "fullnameOverride") -}}
{{- end -}}

{{- define "prfix.gatewayName" -}}
{{- required "prfix-gateway.fullnameOverride: the gateway's object name" (index .Values "prfix-gateway" "fullnameOverride") -}}
{{- end -}}

{{- define "prfix.credentialSecret" -}}
{{- required "prfix-agent.secrets.auditCredential.name: the Secret the agent's audit credential is written to" (index .Values "prfix-agent" "secrets" "auditCredential" "name") -}}
{{- end -}}

{{- define "prfix.credentialKey" -}}
{{- (index .Values "prfix-agent" "secrets" "auditCredential").key | default "credential" -}}
{{- end -}}
