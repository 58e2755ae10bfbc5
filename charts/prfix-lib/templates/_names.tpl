{{/*
Names and labels. The application chart's name (prfix-gateway, prfix-agent, prfix-audit) is the
`app.kubernetes.io/name` of its service's pods: the other charts' NetworkPolicies select callers by
it. A one-off workload of the chart (the migration Job, the backup CronJob) is a "part": its pods
are named `<name>-<part>`, so neither the service's Service nor a NetworkPolicy that admits the
service's pods selects them.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "prfix-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's name when it holds the chart's name (`helm install prfix-agent
charts/prfix-agent` gives prfix-agent), else <release>-<chart>; or fullnameOverride. */}}
{{- define "prfix-lib.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "prfix-lib.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of a part's objects: dict "root" $ "part" "migrate" gives <fullname>-migrate. */}}
{{- define "prfix-lib.partName" -}}
{{- printf "%s-%s" (include "prfix-lib.fullname" .root | trunc 52 | trimSuffix "-") .part -}}
{{- end -}}

{{/* What the application chart says about its service (<chart>.spec), as a dict. */}}
{{- define "prfix-lib.spec" -}}
{{- include (printf "%s.spec" .Chart.Name) . -}}
{{- end -}}

{{/* The service's name in its settings (gateway, agent, audit): PRFIX_<COMPONENT>__..., the container. */}}
{{- define "prfix-lib.component" -}}
{{- (include "prfix-lib.spec" . | fromYaml).service -}}
{{- end -}}

{{/* Labels that select the pods of the service (part "") or of one of its parts. */}}
{{- define "prfix-lib.selectorLabels" -}}
{{- $name := include "prfix-lib.name" .root -}}
app.kubernetes.io/name: {{ if .part }}{{ printf "%s-%s" $name .part | trunc 63 | trimSuffix "-" }}{{ else }}{{ $name }}{{ end }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Every object's labels: dict "root" $ "part" "" (the service) or "migrate", "backup"... */}}
{{- define "prfix-lib.labels" -}}
{{ include "prfix-lib.selectorLabels" . }}
app.kubernetes.io/component: {{ .part | default (include "prfix-lib.component" .root) }}
app.kubernetes.io/part-of: prfix
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The service's ServiceAccount. */}}
{{- define "prfix-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "prfix-lib.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image: repository, then @digest when given, else :tag (default: the chart's appVersion). */}}
{{- define "prfix-lib.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (toString (default .root.Chart.AppVersion $image.tag)) -}}
{{- end -}}
{{- end -}}
