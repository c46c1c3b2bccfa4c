// Package logfields holds the test that keeps the structured logs of every
// signet binary in one field-naming style: snake_case keys (request_id,
// tree_size, duration_ms), so that queries over the logs of the server, the
// Tekton controller and the CLI need not guess a key's spelling.
package logfields

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// Methods of *slog.Logger (and of loggers shaped like it) whose arguments
// after the message are key/value pairs; With takes pairs from the first.
var pairsFrom = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"With": 0,
}

func TestLogKeysAreSnakeCase(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			from, ok := pairsFrom[sel.Sel.Name]
			if !ok || !isLogger(sel.X) {
				return true
			}
			for i := from; i < len(call.Args); i += 2 {
				lit, ok := call.Args[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					// slog.Attr values and computed keys are not pairs to check.
					continue
				}
				key, _ := strconv.Unquote(lit.Value)
				checked++
				if !snakeCase.MatchString(key) {
					t.Errorf("%s: log field %q is not snake_case", fset.Position(lit.Pos()), key)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d log fields found: the walk missed the sources", checked)
	}
}

// isLogger reports whether x names a logger by the names this code base
// gives them (log, logger, l.logger, s.log, slog.Default()…).
func isLogger(x ast.Expr) bool {
	switch e := x.(type) {
	case *ast.Ident:
		return e.Name == "log" || e.Name == "logger" || e.Name == "slog" || strings.HasSuffix(e.Name, "Log") || strings.HasSuffix(e.Name, "Logger")
	case *ast.SelectorExpr:
		return e.Sel.Name == "log" || e.Sel.Name == "logger" || e.Sel.Name == "Logger" || strings.HasSuffix(e.Sel.Name, "Logger")
	case *ast.CallExpr:
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok {
			return sel.Sel.Name == "Default" || sel.Sel.Name == "With" || sel.Sel.Name == "Logger" || isLogger(sel.X)
		}
	}
	return false
}
