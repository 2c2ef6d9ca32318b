module github.com/relaygate/relaygate

go 1.26.0

require (
	github.com/colinmarc/cdb v0.0.0-20190223170904-60f317823f70
	github.com/leodido/go-syslog/v4 v4.6.0
	github.com/nats-io/nats.go v1.56.0
	github.com/prometheus/client_golang v1.20.5
	github.com/rs/zerolog v1.35.1
	golang.org/x/net v0.58.0
	golang.org/x/sys v0.48.0
	gopkg.in/mcuadros/go-syslog.v2 v2.3.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/klauspost/compress v1.20.0 // indirect
	github.com/kr/text v0.1.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.55.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
)
