package journal

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// readMachineID reads a machine id file (machine-id(5)).
func readMachineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !validMachineID(id) {
		return "", fmt.Errorf("%s: %w", path, errBadMachineID)
	}
	return id, nil
}

var errBadMachineID = errors.New("not a machine id (32 lower-case hexadecimal digits)")

func validMachineID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
