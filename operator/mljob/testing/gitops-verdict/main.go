// gitops-verdict prints what GitOps tools decide about Kubernetes objects, computed by the
// libraries those tools use themselves:
//
//   - kstatus: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, which Flux, kpt/cli-utils and
//     Helm 4's --wait use to tell whether a resource is ready (Current), still changing
//     (InProgress), Failed, Terminating or NotFound.
//   - argocd: an Argo CD Lua health script (-health-lua FILE), run in gopher-lua
//     (github.com/yuin/gopher-lua, Lua 5.1) in the sandbox Argo CD builds for a health script
//     from argocd-cm: see newArgoCDState.
//
// Input: YAML or JSON files (stdin without arguments), each holding one or more documents; a
// document is an object, a JSON array of objects, or a *List with items. Output: one JSON line
// per object: {"kind", "namespace", "name", "generation", "kstatus": {"status", "message"},
// "argocd": {"status", "message"}, {"error"}, {} (an empty table) or absent (the script returned
// nil, or no -health-lua)}.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type line struct {
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Name       string   `json:"name"`
	Generation int64    `json:"generation"`
	KStatus    verdict  `json:"kstatus"`
	ArgoCD     *verdict `json:"argocd,omitempty"`
}

func main() {
	healthLua := flag.String("health-lua", "", "an Argo CD health.lua to run on every object")
	openLibs := flag.Bool("open-libs", false,
		"open all Lua libraries, as Argo CD does with resource.customizations.useOpenLibs.<group_kind>: \"true\"")
	flag.Parse()
	script := ""
	if *healthLua != "" {
		text, err := os.ReadFile(*healthLua)
		if err != nil {
			fail(err)
		}
		script = string(text)
	}
	objects, err := readObjects(flag.Args())
	if err != nil {
		fail(err)
	}
	out := json.NewEncoder(os.Stdout)
	for _, obj := range objects {
		result := line{
			Kind:       obj.GetKind(),
			Namespace:  obj.GetNamespace(),
			Name:       obj.GetName(),
			Generation: obj.GetGeneration(),
			KStatus:    computeKStatus(obj),
		}
		if *healthLua != "" {
			result.ArgoCD = argoCDHealth(obj, script, *openLibs)
		}
		if err := out.Encode(result); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "gitops-verdict: %v\n", err)
	os.Exit(2)
}

func computeKStatus(obj *unstructured.Unstructured) verdict {
	result, err := status.Compute(obj)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	return verdict{Status: result.Status.String(), Message: result.Message}
}

// --- input ------------------------------------------------------------------------------------

func readObjects(paths []string) ([]*unstructured.Unstructured, error) {
	if len(paths) == 0 {
		return decodeStream(os.Stdin, "stdin")
	}
	var all []*unstructured.Unstructured
	for _, path := range paths {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		objects, err := decodeStream(file, path)
		file.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, objects...)
	}
	return all, nil
}

func decodeStream(reader io.Reader, source string) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(reader, 4096)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		found, err := decodeDocument(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		objects = append(objects, found...)
	}
}

func decodeDocument(raw json.RawMessage) ([]*unstructured.Unstructured, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, nil
	}
	if trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, err
		}
		var objects []*unstructured.Unstructured
		for _, item := range items {
			found, err := decodeDocument(item)
			if err != nil {
				return nil, err
			}
			objects = append(objects, found...)
		}
		return objects, nil
	}
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(trimmed, &head); err != nil {
		return nil, err
	}
	if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		return decodeDocument(mustJSON(head.Items))
	}
	// Decoded as the API machinery decodes objects (integers are int64), as in Argo CD's cache.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(trimmed); err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{obj}, nil
}

func mustJSON(value any) []byte {
	data, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return data
}

// --- Argo CD health ---------------------------------------------------------------------------

// newArgoCDState builds the Lua state Argo CD (v3.6.2, util/lua/lua.go runLua, with
// util/lua/oslib_safe.go) runs a health script in:
//
//   - lua.NewState with SkipOpenLibs unless the resource's useOpenLibs customization is true
//     (health scripts from argocd-cm default to false; Argo CD's built-in scripts get true);
//   - then, each called with its library name, the package, base and table libraries, and
//     Argo CD's "safe os" opener. That opener registers its two functions (time, date) under
//     the *table* library's name; as the table library is already loaded, gopher-lua's
//     RegisterModule returns it unchanged, so the safe os adds no global: `os` stays nil;
//   - package.preload["os"] = a module of those two functions, so `require("os")` works;
//   - a 1 s execution deadline, the globals `actionParams` (an empty table for a health check)
//     and `obj` (the live object).
//
// The time and date functions are gopher-lua's own os.time and os.date (Argo CD's copies were
// taken from them), picked out of a scratch state's full os library.
func newArgoCDState(obj *unstructured.Unstructured, openLibs bool) (*lua.LState, context.CancelFunc) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	safeOs := safeOsFunctions()
	openSafeOs := func(l *lua.LState) int {
		l.Push(l.RegisterModule(lua.TabLibName, safeOs))
		return 1
	}
	for _, pair := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.open), NRet: 0, Protect: true},
			lua.LString(pair.name)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", toLua(l, obj.Object))
	return l, cancel
}

func safeOsFunctions() map[string]lua.LGFunction {
	scratch := lua.NewState()
	defer scratch.Close()
	full := scratch.GetGlobal(lua.OsLibName).(*lua.LTable)
	functions := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		functions[name] = full.RawGetString(name).(*lua.LFunction).GFunction
	}
	return functions
}

// toLua converts the object as Argo CD's decodeValue does: numbers (float64 or int64) become
// Lua numbers, arrays tables indexed from 1, null nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true,
	"Missing": true,
}

// argoCDHealth runs the script and reads its result as Argo CD's ExecuteHealthLua does: a
// returned table is encoded to JSON (layeh.com/gopher-json, Argo CD's encoder) and read as
// {status, message}; an unknown status becomes Unknown "Lua returned an invalid health status";
// an empty table (encoded as []) an empty health; nil no health at all (null here).
func argoCDHealth(obj *unstructured.Unstructured, script string, openLibs bool) *verdict {
	l, cancel := newArgoCDState(obj, openLibs)
	defer cancel()
	defer l.Close()
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return &verdict{Error: err.Error()}
	}
	returned := l.Get(-1)
	switch returned.Type() {
	case lua.LTNil:
		return nil
	case lua.LTTable:
	default:
		return &verdict{Error: fmt.Sprintf("expect table output from Lua script, not %s", returned.Type())}
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return &verdict{Error: err.Error()}
	}
	var health struct {
		Status  string `json:"status,omitempty"`
		Message string `json:"message,omitempty"`
	}
	if err := json.Unmarshal(encoded, &health); err != nil {
		var typeError *json.UnmarshalTypeError
		if errors.As(err, &typeError) && typeError.Value == "array" &&
			typeError.Type == reflect.TypeOf(health) {
			return &verdict{}
		}
		return &verdict{Error: err.Error()}
	}
	if !validHealth[health.Status] {
		return &verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return &verdict{Status: health.Status, Message: health.Message}
}
