// Package ctcheck checks, from the source, that a secret comparison is
// constant time: an `==` on tokens or digests gives the same answers as
// crypto/subtle, so no behavioural test can tell them apart; only the code
// can. Tests of the packages that compare secrets call it on their own files.
package ctcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
)

// Func reports a problem unless the function (or method) named fn in the Go
// file at path compares with crypto/subtle.ConstantTimeCompare over whole
// values (no `x[:4]`, only `x` or `x[:]`) and uses no `==` or `!=` except
// to test ConstantTimeCompare's result.
func Func(path, fn string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("ctcheck: %w", err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		return fmt.Errorf("ctcheck: %w", err)
	}
	var decl *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == fn {
			decl = fd
		}
	}
	if decl == nil || decl.Body == nil {
		return fmt.Errorf("ctcheck: %s: no function %s", path, fn)
	}
	var problems []string
	calls := 0
	ast.Inspect(decl.Body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			if !isSubtleCompare(x) {
				return true
			}
			calls++
			for _, a := range x.Args {
				if !wholeValue(a) {
					problems = append(problems, fmt.Sprintf("%s: ConstantTimeCompare on part of a value", fset.Position(a.Pos())))
				}
			}
		case *ast.BinaryExpr:
			if x.Op != token.EQL && x.Op != token.NEQ {
				return true
			}
			if c, ok := x.X.(*ast.CallExpr); ok && isSubtleCompare(c) {
				return true
			}
			problems = append(problems, fmt.Sprintf("%s: %s comparison (not constant time)", fset.Position(x.Pos()), x.Op))
		}
		return true
	})
	if calls == 0 {
		problems = append(problems, fmt.Sprintf("%s: %s does not call subtle.ConstantTimeCompare", path, fn))
	}
	if len(problems) > 0 {
		return fmt.Errorf("ctcheck: %s: %v", fn, problems)
	}
	return nil
}

func isSubtleCompare(c *ast.CallExpr) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare"
}

// wholeValue accepts x, x[:], []byte(x) and []byte(x)[:]: anything but a
// slice expression with bounds.
func wholeValue(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.SliceExpr:
		return x.Low == nil && x.High == nil && x.Max == nil && wholeValue(x.X)
	case *ast.CallExpr: // a conversion such as []byte(s)
		for _, a := range x.Args {
			if !wholeValue(a) {
				return false
			}
		}
		return true
	case *ast.ParenExpr:
		return wholeValue(x.X)
	default:
		return true
	}
}
