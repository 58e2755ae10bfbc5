{{/*
What prfix-lib needs to know about this service: its name in settings (PRFIX_AUDIT__...), and the
secrets it reads besides the database and Redis URLs, mounted as files as k8s/base does:
  PRFIX_AUDIT_SIGNING_KEY_FILE  the Ed25519 key (PKCS#8 PEM) that signs the log's checkpoints
*/}}
{{- define "prfix-audit.spec" -}}
service: audit
secretEnv: []
secretFiles:
  - env: PRFIX_AUDIT_SIGNING_KEY_FILE
    secret: {{ .Values.secrets.signingKey.name | quote }}
    key: {{ .Values.secrets.signingKey.key | quote }}
    file: signing-key.pem
{{- end -}}
