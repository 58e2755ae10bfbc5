{{/*
The Pod Security "restricted" profile, and this project's stricter rules: every container runs as
uid/gid 10001 (the images' user), never escalates, has no capability, runs under the runtime's
default seccomp profile and a read-only root filesystem, and writes only to an emptyDir /tmp.
Nothing here is a value: a chart that needs a weaker context is a different chart.
*/}}

{{- define "prfix-lib.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "prfix-lib.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The writable /tmp every container gets: dict "name" "tmp" "sizeLimit" "64Mi". */}}
{{- define "prfix-lib.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit | quote }}
{{- end -}}

{{- define "prfix-lib.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level scheduling fields shared by every pod of the chart. */}}
{{- define "prfix-lib.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
