{{/*
Settings and secrets. Non-secret settings are PRFIX_ variables in the chart's ConfigMap
(`settings` in values; docs/configuration.md). Secrets are never values: each is a key of a Secret
that exists before the release (created by hand or by a secret manager), read either as a variable
(`secretKeyRef`) or as a file named by a `..._FILE` variable, as k8s/base does. The database and
Redis URLs (`secrets.database`, `secrets.redis`) are common to the three services; the rest is
what the chart's `<chart>.spec` lists.
*/}}

{{/* Where a service's secret files are mounted. */}}
{{- define "prfix-lib.secretDir" -}}
/var/run/secrets/prfix/{{ include "prfix-lib.component" . }}
{{- end -}}

{{/* The ConfigMap of non-secret settings. */}}
{{- define "prfix-lib.settings" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "prfix-lib.fullname" . }}-settings
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
data:
  {{- range $key, $value := .Values.settings }}
  {{ $key }}: {{ toString $value | quote }}
  {{- end }}
{{- end -}}

{{/* PRFIX_DATABASE_URL from its Secret: all the migration Job needs. */}}
{{- define "prfix-lib.databaseEnv" -}}
- name: PRFIX_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.database.name | quote }}
      key: {{ .Values.secrets.database.key | quote }}
{{- end -}}

{{/* Every secret the service reads: the database and Redis URLs, then the chart's own. */}}
{{- define "prfix-lib.secretEnv" -}}
{{- $spec := include "prfix-lib.spec" . | fromYaml -}}
{{ include "prfix-lib.databaseEnv" . }}
- name: PRFIX_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.redis.name | quote }}
      key: {{ .Values.secrets.redis.key | quote }}
{{- range $spec.secretEnv }}
{{- if .secret }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- $dir := include "prfix-lib.secretDir" . -}}
{{- range $spec.secretFiles }}
- name: {{ .env }}
  value: {{ printf "%s/%s" $dir .file | quote }}
{{- end }}
{{- end -}}

{{/* The secret files, as one read-only projected volume (the keys may come from several Secrets). */}}
{{- define "prfix-lib.secretVolume" -}}
{{- $spec := include "prfix-lib.spec" . | fromYaml -}}
{{- if $spec.secretFiles }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range $spec.secretFiles }}
      - secret:
          name: {{ .secret | quote }}
          items:
            - key: {{ .key | quote }}
              path: {{ .file | quote }}
      {{- end }}
{{- end }}
{{- end -}}

{{- define "prfix-lib.secretMount" -}}
{{- $spec := include "prfix-lib.spec" . | fromYaml -}}
{{- if $spec.secretFiles }}
- name: secrets
  mountPath: {{ include "prfix-lib.secretDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
