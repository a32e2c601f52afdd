package messages

import "testing"

func TestValidateCommit(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"sha1", "0123456789abcdef0123456789abcdef01234567", true},
		{"sha256", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"short", "0123456", false},
		{"upper", "0123456789ABCDEF0123456789abcdef01234567", false},
		{"option", "--upload-pack=touch pwned", false},
		{"dash padded", "-123456789abcdef0123456789abcdef01234567", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateCommit(tt.id); (err == nil) != tt.ok {
				t.Fatalf("ValidateCommit(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
		})
	}
}

func TestValidateRef(t *testing.T) {
	tests := []struct {
		name string
		ref  string
		ok   bool
	}{
		{"simple", "main", true},
		{"nested", "feature/x-1", true},
		{"option", "--upload-pack=x", false},
		{"dash", "-x", false},
		{"dotdot", "a..b", false},
		{"space", "a b", false},
		{"lock", "a.lock", false},
		{"at brace", "a@{1}", false},
		{"hidden", "a/.b", false},
		{"trailing slash", "a/", false},
		{"colon", "a:b", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateRef(tt.ref); (err == nil) != tt.ok {
				t.Fatalf("ValidateRef(%q) = %v, want ok=%v", tt.ref, err, tt.ok)
			}
		})
	}
}

func FuzzValidateCommit(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef01234567")
	f.Add("--upload-pack=touch pwned")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateCommit(s) == nil && (len(s) == 0 || s[0] == '-') {
			t.Fatalf("accepted %q", s)
		}
		if ValidateRef(s) == nil && (len(s) == 0 || s[0] == '-') {
			t.Fatalf("accepted ref %q", s)
		}
	})
}
