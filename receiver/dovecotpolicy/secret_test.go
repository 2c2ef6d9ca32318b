package dovecotpolicy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := LoadSecret(write("ok", "X-Relaygate-Key:s3cret", 0o640))
	if err != nil || s.Header != "X-Relaygate-Key" || s.WorldReadable {
		t.Fatalf("%+v, %v", s, err)
	}
	if s, err := LoadSecret(write("open", "s3cret", 0o644)); err != nil || !s.WorldReadable || s.Header != "X-Api-Key" {
		t.Fatalf("%+v, %v", s, err)
	}
	for name, content := range map[string]string{
		"newline": "s3cret\n", "crlf": "X-API-Key:s3cret\r\n", "empty": "", "nul": "s3\x00cret",
		"huge": strings.Repeat("a", maxSecretFile+1),
	} {
		if _, err := LoadSecret(write(name, content, 0o600)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "newline" && !strings.Contains(err.Error(), "printf") {
			t.Errorf("newline: the error does not say how to write the file: %v", err)
		}
	}
	if _, err := LoadSecret(dir); err == nil {
		t.Error("a directory accepted")
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file accepted")
	}
}
