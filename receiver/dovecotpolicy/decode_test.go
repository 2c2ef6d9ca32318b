package dovecotpolicy

import (
	"encoding/json"
	"testing"
)

func TestDecodeObserved(t *testing.T) {
	r, err := DecodeRequest([]byte(observedIMAP))
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Login: "alice", Remote: "127.0.0.1", Protocol: "imap", SessionID: "kaC1D/1hMMl/AAAB", Success: true, HasSuccess: true}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
}

func TestDecodeShapes(t *testing.T) {
	for _, c := range []struct {
		name, body string
		ok         bool
		want       Request
	}{
		{"whitespace around", " \n{ \"remote\" : \"192.0.2.1\" , \"success\" : true }\n ", true, Request{Remote: "192.0.2.1", Success: true, HasSuccess: true}},
		{"escapes", `{"login":"a\"l\\i\u00e9","remote":"192.0.2.1"}`, true, Request{Login: "a\"l\\ié", Remote: "192.0.2.1"}},
		// 2.4's fail_type, and nested objects from attributes named a/b.
		{"unknown keys skipped", `{"fail_type":"","x":{"remote":"192.0.2.99","y":[1,2,{"z":null}]},"remote":"192.0.2.1"}`, true, Request{Remote: "192.0.2.1"}},
		{"unknown key twice is no matter", `{"pwhash":"a","pwhash":"b"}`, true, Request{}},
		{"empty object", `{}`, true, Request{}},
		{"tls true", `{"tls":true}`, true, Request{TLS: true}},
		{"policy_reject", `{"policy_reject":true,"success":false}`, true, Request{PolicyReject: true, HasSuccess: true}},
		{"case differs: another key", `{"Remote":"192.0.2.99"}`, true, Request{}},
		{"null", `null`, false, Request{}},
		{"string", `"x"`, false, Request{}},
		{"number key?", `{1:"x"}`, false, Request{}},
		{"trailing comma", `{"remote":"192.0.2.1",}`, false, Request{}},
		{"trailing garbage", `{"remote":"192.0.2.1"}x`, false, Request{}},
		{"login twice", `{"login":"a","login":"b"}`, false, Request{}},
		{"tls a number", `{"tls":1}`, false, Request{}},
		{"session_id a number", `{"session_id":1}`, false, Request{}},
		{"bool True", `{"success":True}`, false, Request{}},
	} {
		r, err := DecodeRequest([]byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if c.ok && r != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, r, c.want)
		}
	}
}

func TestDecodeKeyLimit(t *testing.T) {
	b := []byte{'{'}
	for i := 0; i <= maxKeys; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"k":0`...)
	}
	b = append(b, '}')
	if _, err := DecodeRequest(b); err == nil {
		t.Fatal("accepted more than maxKeys keys")
	}
}

// FuzzDecodeRequest: the decoder never panics; what it accepts is valid
// JSON, one object, whose fields encoding/json reads the same way.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(observedIMAP))
	f.Add([]byte(report("pop3", "2001:db8::1", false)))
	f.Add([]byte(`{"device_id":"","login":"alice","protocol":"imap","pwhash":"0fa1","remote":"127.0.0.1","session_id":"KWV+EP1hsLl/AAAB","tls":false}`))
	f.Add([]byte(`{"a":{"b":"c"},"remote":"::ffff:192.0.2.1","fail_type":"credentials","success":true,"policy_reject":false,"tls":true}`))
	f.Add([]byte(`{"remote":"1","remote":"2"}`))
	f.Add([]byte(`{"login":"\ud800x\u0000"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRequest(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q, which is not an object: %v", body, err)
		}
		str := func(k string) string {
			var s string
			if raw, ok := m[k]; ok {
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatalf("accepted %q with %s not a string", body, k)
				}
			}
			return s
		}
		boolean := func(k string) (bool, bool) {
			var v bool
			raw, ok := m[k]
			if ok {
				if err := json.Unmarshal(raw, &v); err != nil || string(raw) == "null" {
					t.Fatalf("accepted %q with %s not a boolean", body, k)
				}
			}
			return v, ok
		}
		succ, has := boolean("success")
		pr, _ := boolean("policy_reject")
		tls, _ := boolean("tls")
		want := Request{Login: str("login"), Remote: str("remote"), Protocol: str("protocol"), SessionID: str("session_id"),
			Success: succ, HasSuccess: has, PolicyReject: pr, TLS: tls}
		if r != want {
			t.Fatalf("%q: decoded %+v, encoding/json reads %+v", body, r, want)
		}
	})
}
