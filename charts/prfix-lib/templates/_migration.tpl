{{/*
The migration Job: `prfix-<service> --migrate` creates the database when it is missing, applies the
service's pending schema migrations under the same advisory lock start-up takes, checks that the
service's role can open a session, and exits 0. It runs as a Helm hook before the release's objects
are installed or upgraded, so the new image's migrations are in before its pods start, and a failed
migration fails the install or upgrade with the old pods still serving.

It needs the database URL only. Everything it uses exists before the release's own objects do:
the database Secret (made beforehand), and its ServiceAccount and NetworkPolicy, hooks too, created
first (a lower hook weight). A succeeded Job and its helpers are deleted; a failed one is kept for
its logs until the next attempt replaces it.
*/}}
{{- define "prfix-lib.migration" -}}
{{- if .Values.migration.enabled -}}
{{- $part := dict "root" . "part" "migrate" -}}
{{- $name := include "prfix-lib.partName" $part -}}
{{- $helpers := dict "helm.sh/hook" "pre-install,pre-upgrade" "helm.sh/hook-weight" "-10" "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" $part | nindent 4 }}
  annotations:
    {{- toYaml $helpers | nindent 4 }}
automountServiceAccountToken: false
{{- if .Values.networkPolicy.enabled }}
---
{{ include "prfix-lib.partNetworkPolicy" (merge (dict "annotations" $helpers) $part) }}
{{- end }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" $part | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .Values.migration.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.migration.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "prfix-lib.labels" $part | nindent 8 }}
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      restartPolicy: Never
      securityContext:
        {{- include "prfix-lib.podSecurityContext" . | nindent 8 }}
      {{- with include "prfix-lib.scheduling" . }}
      {{- . | trim | nindent 6 }}
      {{- end }}
      containers:
        - name: migrate
          image: {{ include "prfix-lib.image" (dict "root" . "image" .Values.image) | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["--migrate"]
          env:
            {{- range $key := list "PRFIX_LOG_FORMAT" "PRFIX_LOG_LEVEL" }}
            {{- if hasKey $.Values.settings $key }}
            - name: {{ $key }}
              value: {{ index $.Values.settings $key | toString | quote }}
            {{- end }}
            {{- end }}
            {{- include "prfix-lib.databaseEnv" . | nindent 12 }}
          securityContext:
            {{- include "prfix-lib.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.migration.resources | nindent 12 }}
          volumeMounts:
            {{- include "prfix-lib.tmpMount" . | nindent 12 }}
      volumes:
        {{- include "prfix-lib.tmpVolume" (dict "sizeLimit" "16Mi") | nindent 8 }}
{{- end -}}
{{- end -}}
