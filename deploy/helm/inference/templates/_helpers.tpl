{{- define "inference.labels" -}}
app.kubernetes.io/name: inference
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inference.tokenSecret" -}}
{{- if .Values.security.existingTokenSecret }}{{ .Values.security.existingTokenSecret }}{{ else }}{{ .Release.Name }}-token{{ end }}
{{- end }}

{{- define "inference.parameterServers" -}}
{{- $root := . -}}
{{- range $i, $shard := until (int .Values.parameterServer.shards) }}{{ if $i }},{{ end }}http://{{ $root.Release.Name }}-ps-{{ $i }}.{{ $root.Release.Name }}-ps:{{ $root.Values.parameterServer.port }}{{ end }}
{{- end }}
