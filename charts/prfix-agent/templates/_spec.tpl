{{/*
What prfix-lib needs to know about this service: its name in settings (PRFIX_AGENT__...), and the
secrets it reads besides the database and Redis URLs:
  PRFIX_AGENT_AUDIT_CREDENTIAL  the API key of a `service` user it appends its audit records with
                                (docs/audit.md); optional: provisioned after the gateway's first
                                start, and until then its records wait in its outbox
  PRFIX_FORGE_<NAME>_TOKEN_FILE, PRFIX_FORGE_<NAME>_APP_KEY_FILE
                                a forge connection's token or GitHub App key (secrets.forges)
*/}}
{{- define "prfix-agent.spec" -}}
service: agent
secretEnv:
  - name: PRFIX_AGENT_AUDIT_CREDENTIAL
    secret: {{ .Values.secrets.auditCredential.name | quote }}
    key: {{ .Values.secrets.auditCredential.key | quote }}
    optional: {{ .Values.secrets.auditCredential.optional }}
secretFiles:
{{- range .Values.secrets.forges }}
  - env: PRFIX_FORGE_{{ .connection | upper | replace "-" "_" }}_{{ if .appKey }}APP_KEY{{ else }}TOKEN{{ end }}_FILE
    secret: {{ .name | quote }}
    key: {{ .key | quote }}
    file: forge-{{ .connection }}-{{ if .appKey }}app-key{{ else }}token{{ end }}
{{- else }} []
{{- end }}
{{- end -}}
