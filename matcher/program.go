package matcher

import (
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/wfevents/wfevents/model"
)

// Program is the compiled form of one version of a template: its event
// expression and its parameter expressions. A Program is immutable and safe
// for concurrent use.
type Program struct {
	// Template is the resource the program was compiled from. Callers must
	// not change it.
	Template model.Template

	selector   *vm.Program
	parameters []parameterProgram
}

type parameterProgram struct {
	parameter model.Parameter
	program   *vm.Program // nil when the parameter has no expression
}

// CompileError reports an expression that does not compile.
type CompileError struct {
	Ref        model.ResourceRef
	Field      string // the field that holds the expression, such as spec.event.expression
	Expression string
	Err        error // expr's error, which carries the line and column
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("compile %s of %s: %v", e.Field, e.Ref, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// EvalError reports an expression that failed for one event.
type EvalError struct {
	Ref   model.ResourceRef
	Field string
	Err   error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("evaluate %s of %s: %v", e.Field, e.Ref, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// compileOptions declare the environment's names and types without a
// concrete event. Fields of type any are checked at run time, so an
// expression such as payload.x compiles whatever shape the events have.
var compileOptions = []expr.Option{expr.Env(Env{})}

// Compile compiles every expression of t. It returns a *CompileError for the
// first expression that does not compile.
func Compile(t model.Template) (*Program, error) {
	const selectorField = "spec.event.expression"
	selector, err := expr.Compile(t.Expression, compileOptions...)
	if err != nil {
		return nil, &CompileError{Ref: t.Ref, Field: selectorField, Expression: t.Expression, Err: err}
	}

	parameters := make([]parameterProgram, len(t.Parameters))
	for i, parameter := range t.Parameters {
		parameters[i].parameter = parameter
		if parameter.Expression == "" {
			continue
		}
		program, err := expr.Compile(parameter.Expression, compileOptions...)
		if err != nil {
			field := fmt.Sprintf("spec.arguments.parameters[%d].valueFrom.expression", i)
			return nil, &CompileError{Ref: t.Ref, Field: field, Expression: parameter.Expression, Err: err}
		}
		parameters[i].program = program
	}

	return &Program{Template: t, selector: selector, parameters: parameters}, nil
}

// Match evaluates the event expression. A result that is not a bool is an
// *EvalError naming the type it got.
func (p *Program) Match(env *Env) (bool, error) {
	const field = "spec.event.expression"
	out, err := expr.Run(p.selector, env)
	if err != nil {
		return false, &EvalError{Ref: p.Template.Ref, Field: field, Err: err}
	}
	matched, ok := out.(bool)
	if !ok {
		return false, &EvalError{Ref: p.Template.Ref, Field: field, Err: fmt.Errorf("result is %T, want bool", out)}
	}
	return matched, nil
}

// Parameters computes the template's parameters for the event, in order. A
// parameter without an expression keeps its fixed value or default; one
// whose expression yields nil takes its default, or the empty string.
func (p *Program) Parameters(env *Env) ([]model.ParameterValue, error) {
	values := make([]model.ParameterValue, 0, len(p.parameters))
	for i, compiled := range p.parameters {
		value, err := p.parameterValue(env, compiled)
		if err != nil {
			field := fmt.Sprintf("spec.arguments.parameters[%d].valueFrom.expression", i)
			return nil, &EvalError{Ref: p.Template.Ref, Field: field, Err: err}
		}
		values = append(values, model.ParameterValue{Name: compiled.parameter.Name, Value: value})
	}
	return values, nil
}

func (p *Program) parameterValue(env *Env, compiled parameterProgram) (string, error) {
	parameter := compiled.parameter
	if compiled.program == nil {
		switch {
		case parameter.Value != nil:
			return *parameter.Value, nil
		case parameter.Default != nil:
			return *parameter.Default, nil
		}
		return "", nil
	}

	out, err := expr.Run(compiled.program, env)
	if err != nil {
		return "", err
	}
	if out == nil && parameter.Default != nil {
		return *parameter.Default, nil
	}
	return EncodeParameter(out)
}
