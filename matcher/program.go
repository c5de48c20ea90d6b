package matcher

import (
	"fmt"
	"sort"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/wfevents/wfevents/model"
)

// Program is the compiled form of one version of a template or binding: its
// event expression, its parameter expressions and, for a binding, its
// metadata expressions. A Program is immutable and safe for concurrent use.
type Program struct {
	// Template is the template the program was compiled from, when it was
	// compiled from one. Callers must not change it.
	Template model.Template

	// Binding is the binding the program was compiled from, or nil.
	// Callers must not change it.
	Binding *model.Binding

	meta       model.ObjectMeta
	selector   fieldProgram
	parameters []parameterProgram
	metadata   []metadataProgram // bindings only
}

// fieldProgram is one compiled expression and the field it came from.
type fieldProgram struct {
	field   string
	program *vm.Program
}

type parameterProgram struct {
	parameter model.Parameter
	fieldProgram
}

// metadataProgram computes one Workflow metadata field of a binding.
type metadataProgram struct {
	fieldProgram
	set func(m *WorkflowMetadata, value string)
}

// Meta returns the identity and version of the compiled resource.
func (p *Program) Meta() model.ObjectMeta { return p.meta }

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
//
// toJson and jsonpath are the helpers Argo offers, with the same names.
var compileOptions = []expr.Option{
	expr.Env(Env{}),
	expr.MaxNodes(maxExpressionNodes),
	expr.Function("toJson", func(args ...any) (any, error) { return toJSON(args[0]) }, new(func(any) (string, error))),
	expr.Function("jsonpath", func(args ...any) (any, error) {
		document, _ := args[0].(string)
		query, _ := args[1].(string)
		return jsonPath(document, query)
	}, new(func(string, string) (any, error))),
}

// Compile compiles every expression of t. It returns a *CompileError for the
// first expression that does not compile.
func Compile(t model.Template) (*Program, error) {
	program := &Program{Template: t, meta: t.Meta()}
	var err error
	program.selector, err = compileField(t.Ref, "spec.event.expression", t.Expression)
	if err != nil {
		return nil, err
	}
	program.parameters, err = compileParameters(t.Ref, "spec.arguments.parameters[%d].valueFrom.expression", t.Parameters)
	if err != nil {
		return nil, err
	}
	return program, nil
}

// CompileBinding compiles every expression of b. It returns a *CompileError
// for the first expression that does not compile.
func CompileBinding(b model.Binding) (*Program, error) {
	program := &Program{Binding: &b, meta: b.Meta()}
	var err error
	program.selector, err = compileField(b.Ref, "spec.event.selector", b.Selector)
	if err != nil {
		return nil, err
	}
	if b.Submit == nil {
		return program, nil
	}

	program.parameters, err = compileParameters(b.Ref, "spec.submit.arguments.parameters[%d].valueFrom.event", b.Submit.Parameters)
	if err != nil {
		return nil, err
	}

	// Metadata fields, in a fixed order so errors are reported stably.
	metadata := b.Submit.Metadata
	add := func(field, expression string, set func(*WorkflowMetadata, string)) error {
		if expression == "" {
			return nil
		}
		compiled, err := compileField(b.Ref, field, expression)
		if err != nil {
			return err
		}
		program.metadata = append(program.metadata, metadataProgram{fieldProgram: compiled, set: set})
		return nil
	}
	if err := add("spec.submit.metadata.name", metadata.Name, func(m *WorkflowMetadata, v string) { m.Name = v }); err != nil {
		return nil, err
	}
	if err := add("spec.submit.metadata.generateName", metadata.GenerateName, func(m *WorkflowMetadata, v string) { m.GenerateName = v }); err != nil {
		return nil, err
	}
	for _, key := range sortedKeys(metadata.Labels) {
		field := fmt.Sprintf("spec.submit.metadata.labels[%q]", key)
		if err := add(field, metadata.Labels[key], func(m *WorkflowMetadata, v string) { m.Labels[key] = v }); err != nil {
			return nil, err
		}
	}
	for _, key := range sortedKeys(metadata.Annotations) {
		field := fmt.Sprintf("spec.submit.metadata.annotations[%q]", key)
		if err := add(field, metadata.Annotations[key], func(m *WorkflowMetadata, v string) { m.Annotations[key] = v }); err != nil {
			return nil, err
		}
	}
	return program, nil
}

// Limits on one expression, checked when it is compiled, so a resource
// cannot make every event expensive. Evaluation is bounded too: expr's
// virtual machine stops a run that allocates more than its memory budget,
// 1e6 units by default in expr v1.17.
const (
	maxExpressionLength = 16 << 10 // bytes
	maxExpressionNodes  = 5000     // syntax tree nodes
)

func compileField(ref model.ResourceRef, field, expression string) (fieldProgram, error) {
	if len(expression) > maxExpressionLength {
		return fieldProgram{}, &CompileError{Ref: ref, Field: field, Expression: expression[:64] + "...",
			Err: fmt.Errorf("expression is %d bytes long, more than the limit of %d: split the logic or simplify it", len(expression), maxExpressionLength)}
	}
	program, err := expr.Compile(expression, compileOptions...)
	if err != nil {
		return fieldProgram{}, &CompileError{Ref: ref, Field: field, Expression: expression, Err: err}
	}
	return fieldProgram{field: field, program: program}, nil
}

// compileParameters compiles the parameters' expressions. fieldFormat names
// a parameter's expression field given its index.
func compileParameters(ref model.ResourceRef, fieldFormat string, parameters []model.Parameter) ([]parameterProgram, error) {
	compiled := make([]parameterProgram, len(parameters))
	for i, parameter := range parameters {
		compiled[i].parameter = parameter
		compiled[i].field = fmt.Sprintf(fieldFormat, i)
		if parameter.Expression == "" {
			continue
		}
		field, err := compileField(ref, compiled[i].field, parameter.Expression)
		if err != nil {
			return nil, err
		}
		compiled[i].fieldProgram = field
	}
	return compiled, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// Match evaluates the event expression. A result that is not a bool is an
// *EvalError naming the type it got.
func (p *Program) Match(env *Env) (bool, error) {
	out, err := expr.Run(p.selector.program, env)
	if err != nil {
		return false, &EvalError{Ref: p.meta.Ref, Field: p.selector.field, Err: err}
	}
	matched, ok := out.(bool)
	if !ok {
		return false, &EvalError{Ref: p.meta.Ref, Field: p.selector.field, Err: fmt.Errorf("result is %T, want bool", out)}
	}
	return matched, nil
}

// Parameters computes the parameters for the event, in order. A parameter
// without an expression keeps its fixed value or default; one whose
// expression yields nil takes its default, or the empty string.
func (p *Program) Parameters(env *Env) ([]model.ParameterValue, error) {
	values := make([]model.ParameterValue, 0, len(p.parameters))
	for _, compiled := range p.parameters {
		value, err := parameterValue(env, compiled)
		if err != nil {
			return nil, &EvalError{Ref: p.meta.Ref, Field: compiled.field, Err: err}
		}
		values = append(values, model.ParameterValue{Name: compiled.parameter.Name, Value: value})
	}
	return values, nil
}

func parameterValue(env *Env, compiled parameterProgram) (string, error) {
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

// WorkflowMetadata is the Workflow metadata a binding computes. Empty fields
// were not set by the binding.
type WorkflowMetadata struct {
	Name         string
	GenerateName string
	Labels       map[string]string
	Annotations  map[string]string
}

// ComputeMetadata evaluates a binding's metadata expressions. Each must
// return a string; any other result is an *EvalError naming the field and
// the type it got. For a template's program the result is empty.
func (p *Program) ComputeMetadata(env *Env) (WorkflowMetadata, error) {
	metadata := WorkflowMetadata{Labels: map[string]string{}, Annotations: map[string]string{}}
	for _, compiled := range p.metadata {
		out, err := expr.Run(compiled.program, env)
		if err != nil {
			return WorkflowMetadata{}, &EvalError{Ref: p.meta.Ref, Field: compiled.field, Err: err}
		}
		value, ok := out.(string)
		if !ok {
			return WorkflowMetadata{}, &EvalError{Ref: p.meta.Ref, Field: compiled.field, Err: fmt.Errorf("result is %s, want string", describeType(out))}
		}
		compiled.set(&metadata, value)
	}
	return metadata, nil
}

// describeType names v's type in the words of JSON and expressions.
func describeType(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "bool"
	case map[string]any:
		return "map"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}
