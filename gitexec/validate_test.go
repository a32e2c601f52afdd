package gitexec

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidateCommit(t *testing.T) {
	sha1 := strings.Repeat("a1", 20)
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"sha1", sha1, true},
		{"sha256", strings.Repeat("0f", 32), true},
		{"empty", "", false},
		{"abbreviated", sha1[:12], false},
		{"uppercase", strings.ToUpper(sha1), false},
		{"option", "--upload-pack=touch pwned", false},
		{"option of the right length", "-" + sha1[1:], false},
		{"revision expression", sha1[:38] + "^1", false},
		{"branch name", "main", false},
		{"41 digits", sha1 + "a", false},
		{"trailing newline", sha1[:39] + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateCommit(tt.id)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, "invalid commit id")
		})
	}
}

func TestValidateRef(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		wantErr string // "" means valid
	}{
		{"simple", "main", ""},
		{"hierarchical", "feature/login-page", ""},
		{"dots inside", "release-1.2.3", ""},
		{"at sign alone inside", "user@host", ""},
		{"unicode", "fonctionnalité", ""},
		{"empty", "", "it is empty"},
		{"at", "@", `"@" is not a branch name`},
		{"HEAD", "HEAD", `"HEAD" is not a branch name`},
		{"option", "--upload-pack=touch pwned", "starts with '-'"},
		{"dash", "-b", "starts with '-'"},
		{"full ref", "refs/heads/main", "short name"},
		{"double dot", "a..b", `contains ".."`},
		{"reflog", "main@{1}", `contains "@{"`},
		{"trailing slash", "main/", "ends with '/'"},
		{"leading slash", "/main", `"//" or starts with '/'`},
		{"double slash", "a//b", `"//" or starts with '/'`},
		{"trailing dot", "main.", "ends with '.'"},
		{"component starts with dot", "a/.b", "starts with '.'"},
		{"hidden", ".main", "starts with '.'"},
		{"lock", "main.lock", `ends with ".lock"`},
		{"lock component", "main.lock/x", `ends with ".lock"`},
		{"space", "my branch", "contains ' '"},
		{"tilde", "main~1", "contains '~'"},
		{"caret", "main^", "contains '^'"},
		{"colon", "a:b", "contains ':'"},
		{"question", "a?", "contains '?'"},
		{"star", "a*", "contains '*'"},
		{"bracket", "a[1]", "contains '['"},
		{"backslash", `a\b`, `contains '\\'`},
		{"newline", "a\nb", "control character"},
		{"DEL", "a\x7fb", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRef(tt.ref)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, "invalid branch name")
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// FuzzValidateRef checks ValidateRef against git check-ref-format's core rules:
// anything accepted can never be read as an option or a revision expression.
func FuzzValidateRef(f *testing.F) {
	for _, s := range []string{"main", "a/b", "-x", "a..b", "@", "a@{1}", "x.lock"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateRef(name) != nil {
			return
		}
		if name == "" || name[0] == '-' || strings.ContainsAny(name, " ~^:?*[\\\x00") ||
			strings.Contains(name, "..") || strings.Contains(name, "@{") {
			t.Fatalf("accepted %q", name)
		}
	})
}
