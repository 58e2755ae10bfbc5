{{/*
What prfix-lib needs to know about this service: its name in settings (PRFIX_GATEWAY__...), and
the secrets it reads besides the database and Redis URLs, mounted as files as k8s/base does:
  PRFIX_SIGNING_KEY_FILE               the RS256 key that signs access tokens (PEM, 2048 bits or more)
  PRFIX_BOOTSTRAP_ADMIN_PASSWORD_FILE  creates the user `admin` when there is no user yet
  PRFIX_FORGE_<NAME>_WEBHOOK_SECRET_FILE  a forge connection's webhook secret (secrets.forges)
*/}}
{{- define "prfix-gateway.spec" -}}
service: gateway
secretEnv: []
secretFiles:
  - env: PRFIX_SIGNING_KEY_FILE
    secret: {{ .Values.secrets.signingKey.name | quote }}
    key: {{ .Values.secrets.signingKey.key | quote }}
    file: signing-key.pem
  - env: PRFIX_BOOTSTRAP_ADMIN_PASSWORD_FILE
    secret: {{ .Values.secrets.bootstrapAdminPassword.name | quote }}
    key: {{ .Values.secrets.bootstrapAdminPassword.key | quote }}
    file: bootstrap-admin-password
{{- range .Values.secrets.forges }}
  - env: PRFIX_FORGE_{{ .connection | upper | replace "-" "_" }}_WEBHOOK_SECRET_FILE
    secret: {{ .name | quote }}
    key: {{ .key | quote }}
    file: forge-{{ .connection }}-webhook-secret
{{- end }}
{{- end -}}
