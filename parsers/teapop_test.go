package parsers

import "testing"

func TestTeapop(t *testing.T) {
	runCases(t, teapop{}, []parseCase{
		{"vpop", "teapop", "Successful login for alice@example.org [203.0.113.5] from h.example.net [192.0.2.10]", "login|192.0.2.10|alice@example.org|"},
		{"plain", "teapop", "Successful login for alice [203.0.113.5] from unknown [192.0.2.10]", "login|192.0.2.10|alice|"},
		{"user with space", "teapop", "Successful login for a b [203.0.113.5] from h [192.0.2.10]", "login|192.0.2.10|a b|"},

		{"failed", "teapop", "Failed login for alice [203.0.113.5] from h [203.0.113.66]", "nomatch"},
		{"lone bracket", "teapop", "Successful login for alice [203.0.113.5]", "refused"},
		{"no from", "teapop", "Successful login for alice [203.0.113.5] at h [192.0.2.10]", "refused"},
		{"no server address", "teapop", "Successful login for alice from h [192.0.2.10]", "refused"},
		{"trailing text", "teapop", "Successful login for alice [203.0.113.5] from h [192.0.2.10] x", "refused"},
		{"bracket user", "teapop", "Successful login for a[b] [203.0.113.5] from h [192.0.2.10]", "refused"},
		{"empty user", "teapop", "Successful login for  [203.0.113.5] from h [192.0.2.10]", "refused"},
	})
}
