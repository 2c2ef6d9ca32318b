module github.com/relaygate/relaygate

go 1.23.0

require (
	github.com/colinmarc/cdb v0.0.0-20190223170904-60f317823f70
	github.com/rs/zerolog v1.35.1
	gopkg.in/mcuadros/go-syslog.v2 v2.3.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	golang.org/x/sys v0.29.0 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
