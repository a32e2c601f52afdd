// Package volt_test keeps the import rules of docs/style.md (packages) true: each
// package may import only what its row of the table allows.
package volt_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/voltci/volt"

// forbidden maps a package prefix (relative to the module) to the imports
// it must never have, directly or through its dependencies.
var forbidden = map[string][]string{
	"messages":     {module + "/"},
	"actors":       {"os/exec", "net", module + "/gitexec", module + "/sim", module + "/cluster", module + "/store"},
	"gitexec":      {module + "/actors", module + "/cluster", "github.com/asynkron/protoactor-go"},
	"jobspec":      {module + "/actors", module + "/cluster", "github.com/asynkron/protoactor-go"},
	"store":        {module + "/actors", "github.com/asynkron/protoactor-go"},
	"cluster":      {module + "/sim"},
	"pki":          {module + "/actors", module + "/cluster", module + "/gitexec", module + "/sim", "github.com/asynkron/protoactor-go"},
	"sim":          {"os/exec", "net", module + "/gitexec", module + "/cluster", module + "/store"},
	"actors/plant": {module + "/"},
	"cmd/volt":     {"testing"},
}

// required maps a package to imports it must have: the simulator runs the
// roles' own shells (actors/host), not an effect executor of its own.
var required = map[string][]string{
	"sim": {module + "/actors/host"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, need := range required[rel] {
			checked++
			if !slices.Contains(p.Imports, need) {
				t.Errorf("%s does not import %s: the simulator must run the roles' shells through it", p.ImportPath, need)
			}
		}
		for prefix, bans := range forbidden {
			if rel != prefix && !strings.HasPrefix(rel, prefix+"/") {
				continue
			}
			checked++
			// actors may not use net directly, but Proto.Actor needs it: check
			// direct imports for the standard library, all deps for Volt packages.
			for _, imp := range p.Imports {
				for _, ban := range bans {
					if imp == ban || (strings.HasSuffix(ban, "/") && strings.HasPrefix(imp, ban)) || strings.HasPrefix(imp, ban+"/") {
						t.Errorf("%s imports %s, which docs/style.md forbids", p.ImportPath, imp)
					}
				}
			}
			for _, dep := range p.Deps {
				for _, ban := range bans {
					if strings.HasPrefix(ban, module) && (dep == ban || strings.HasPrefix(dep, ban+"/") || (strings.HasSuffix(ban, "/") && strings.HasPrefix(dep, ban))) {
						t.Errorf("%s depends on %s, which docs/style.md forbids", p.ImportPath, dep)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package checked: is the module path right?")
	}
}
