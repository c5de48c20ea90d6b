package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/file"
	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/wfevents/wfevents/kube"
	"github.com/wfevents/wfevents/matcher"
	"github.com/wfevents/wfevents/model"
	"github.com/wfevents/wfevents/workers"
)

// checkEventID is the event ID that --event uses where the server would
// generate a UUID, so the printed Workflows are the same on every run.
const checkEventID = "check"

// errCheckFailed reports that check found problems. They are already
// printed, one per line.
var errCheckFailed = errors.New("check found errors")

const checkUsage = `Usage: wfevents check [flags] PATH...

Check reads WorkflowTemplate, ClusterWorkflowTemplate and WorkflowEventBinding
objects (apiVersion argoproj.io/*) from YAML or JSON files, multi-document
files included, and from every *.yaml, *.yml and *.json file under each
directory. It converts and compiles them with the server's code and prints
each problem on stderr as one line:

  FILE:LINE: KIND/NAMESPACE/NAME: FIELD: MESSAGE (column C)

LINE is the line of the field in FILE, moved down to the expression's line
when a multi-line expression fails on a later line. C counts characters in
that line of the expression. A problem outside an expression has no column,
and invalid YAML has no resource either. Documents of other kinds are
ignored. The last line on stderr counts resources, files and errors.

With --event, check also evaluates the resources against the event as the
server does for POST /api/v1/events/NAMESPACE, without access control, and
prints the Workflows it would create to stdout as YAML documents separated by
"---". They have a generateName and no name, as the API server has not yet
added a suffix, and their event ID label is "check". A resource that fails for
the event is one more problem line.

The exit status is 1 when check found a problem, and 2 for invalid flags and
unreadable files.

Flags:
`

// checkOptions are the flags and arguments of "wfevents check".
type checkOptions struct {
	paths []string

	eventFile     string
	headers       http.Header
	subject       string
	groups        stringList
	namespace     string
	discriminator string
	instanceID    string
}

// eventOnlyFlags are the flags that describe the event of --event.
var eventOnlyFlags = []string{"header", "subject", "group", "namespace", "discriminator", "instance-id"}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(value string) error {
	*l = append(*l, value)
	return nil
}

// headerFlag adds NAME=VALUE to a header, under its canonical name as the
// server receives it.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(value string) error {
	name, headerValue, ok := strings.Cut(value, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New("want NAME=VALUE, such as X-GitHub-Event=push")
	}
	http.Header(h).Add(strings.TrimSpace(name), headerValue)
	return nil
}

func parseCheckFlags(args []string, stderr io.Writer) (checkOptions, error) {
	opts := checkOptions{headers: http.Header{}}
	flags := flag.NewFlagSet("wfevents check", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), checkUsage)
		flags.PrintDefaults()
	}

	flags.StringVar(&opts.eventFile, "event", "", "evaluate the resources against the JSON body in `file`, or in stdin for -")
	flags.Var(headerFlag(opts.headers), "header", "request header of the event as `NAME=VALUE`, repeated for more headers")
	flags.StringVar(&opts.subject, "subject", "admin", "user name of the caller, which expressions see as metadata.claimSet.sub")
	flags.Var(&opts.groups, "group", "`group` of the caller, repeated for more groups")
	flags.StringVar(&opts.namespace, "namespace", "argo", "`namespace` the event is sent to, also used for resources that set none. Empty sends a cluster-scoped event and puts such resources in default")
	flags.StringVar(&opts.discriminator, "discriminator", "", "last path segment of the event URL, /api/v1/events/NAMESPACE/DISCRIMINATOR")
	flags.StringVar(&opts.instanceID, "instance-id", "", "evaluate only resources labelled workflows.argoproj.io/controller-instanceid=`id`, as the server's --instance-id does")

	paths, err := parseInterspersed(flags, args)
	if err != nil {
		return opts, err
	}
	opts.paths = paths

	if len(opts.paths) == 0 {
		fmt.Fprintf(stderr, "wfevents check: no file or directory to check: pass at least one PATH\n\n")
		flags.Usage()
		return opts, errUsage
	}
	if opts.eventFile == "" {
		var misplaced []string
		flags.Visit(func(f *flag.Flag) {
			for _, name := range eventOnlyFlags {
				if f.Name == name {
					misplaced = append(misplaced, "--"+name)
				}
			}
		})
		if len(misplaced) > 0 {
			fmt.Fprintf(stderr, "wfevents check: %s describes the event and needs --event: add --event FILE\n", strings.Join(misplaced, ", "))
			return opts, errUsage
		}
	}
	return opts, nil
}

// parseInterspersed parses args with flags and returns the arguments that
// are not flags. Unlike flags.Parse alone it also reads flags that follow an
// argument, as in "wfevents check dir/ --event push.json", until "--".
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for rest := args; ; {
		if err := flags.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		consumed := rest[:len(rest)-flags.NArg()]
		rest = flags.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
}

// runCheck runs "wfevents check" with the event of --event - read from
// os.Stdin.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return check(ctx, args, os.Stdin, stdout, stderr)
}

// check loads the resources under the paths of args, reports their problems
// and, with --event, the Workflows the event would create. It returns
// errCheckFailed when it reported a problem.
func check(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	// Read the event before anything is printed, so a bad --event stops
	// the command with one message.
	var event *model.Event
	if opts.eventFile != "" {
		if event, err = readCheckEvent(opts, stdin); err != nil {
			return err
		}
	}

	// Load and compile every resource, reporting problems in file order.
	files, err := listResourceFiles(opts.paths)
	if err != nil {
		return err
	}
	problems := &problemReport{w: stderr}
	loader := resourceLoader{problems: problems}
	if event != nil {
		loader.defaultNamespace = namespaceOrDefault(opts.namespace)
	}
	for _, name := range files {
		if err := loader.loadFile(name); err != nil {
			return err
		}
	}

	// Evaluate the event and print the Workflows it would create.
	var matched, workflows int
	if event != nil {
		if matched, workflows, err = evaluateCheckEvent(ctx, *event, opts.instanceID, loader.resources, problems, stdout); err != nil {
			return err
		}
	}

	fmt.Fprintf(stderr, "checked %s in %s: %s", plural(len(loader.resources), "resource"), plural(len(files), "file"), plural(problems.count, "error"))
	if event != nil {
		fmt.Fprintf(stderr, "; the event matched %s and would create %s", plural(matched, "resource"), plural(workflows, "Workflow"))
	}
	fmt.Fprintln(stderr)
	if problems.count > 0 {
		return errCheckFailed
	}
	return nil
}

// namespaceOrDefault returns the namespace for resources that set none: the
// event's, or default for a cluster-scoped event.
func namespaceOrDefault(namespace string) string {
	if namespace == "" {
		return "default"
	}
	return namespace
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// problemReport prints problems, one line each, and counts them.
type problemReport struct {
	w     io.Writer
	count int
}

// add prints "file:line: resource: message", leaving out an empty resource.
func (p *problemReport) add(fileName string, line int, resource, message string) {
	p.count++
	if resource == "" {
		fmt.Fprintf(p.w, "%s:%d: %s\n", fileName, line, message)
		return
	}
	fmt.Fprintf(p.w, "%s:%d: %s: %s\n", fileName, line, resource, message)
}

// warn prints a line that does not count as a problem.
func (p *problemReport) warn(fileName string, line int, resource, message string) {
	fmt.Fprintf(p.w, "%s:%d: %s: warning: %s\n", fileName, line, resource, message)
}

// listResourceFiles expands paths into files. A file is read whatever its
// name, and a directory gives its *.yaml, *.yml and *.json files,
// recursively, in lexical order. A file named twice is read once.
func listResourceFiles(paths []string) ([]string, error) {
	var files []string
	seen := make(map[string]bool)
	add := func(name string) {
		if clean := filepath.Clean(name); !seen[clean] {
			seen[clean] = true
			files = append(files, name)
		}
	}

	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%w: pass an existing file or directory", err)
		}
		if !info.IsDir() {
			add(path)
			continue
		}
		err = filepath.WalkDir(path, func(name string, entry fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(name)) {
			case ".yaml", ".yml", ".json":
				if !entry.IsDir() {
					add(name)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list files under %s: %w", path, err)
		}
	}
	return files, nil
}

// checkedResource is one template or binding read from a file.
type checkedResource struct {
	ref  model.ResourceRef
	file string
	line int // the line in file where the resource's document starts

	// root is the document parsed with positions. It is nil when the YAML
	// parser with positions rejects a document that the server's parser
	// reads, and then every problem is reported at line.
	root *yamlv3.Node

	// template or binding is the converted resource. Both are nil when
	// conversion failed.
	template *model.Template
	binding  *model.Binding
}

// resourceLoader reads resources from files, the same way for every file.
type resourceLoader struct {
	problems *problemReport

	// defaultNamespace is set on namespaced resources without a namespace,
	// as kubectl apply -n would, when it is not empty.
	defaultNamespace string

	resources []*checkedResource
	byRef     map[model.ResourceRef]*checkedResource
}

// loadFile reads the resources of one file and reports documents that do
// not parse and resources that do not convert.
func (l *resourceLoader) loadFile(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read resources: %w", err)
	}
	documents, err := splitDocuments(data)
	if err != nil {
		var separator *separatorError
		if !errors.As(err, &separator) {
			return err
		}
		l.problems.add(name, separator.line, "", separator.Error())
	}
	for _, document := range documents {
		l.loadDocument(name, document)
	}
	return nil
}

func (l *resourceLoader) loadDocument(name string, document yamlDocument) {
	// Decode with sigs.k8s.io/yaml, the YAML parser of the server's fixture
	// loader, so a value has the type the server would see.
	var decoded any
	if err := yaml.Unmarshal(document.data, &decoded); err != nil {
		line, message := rebaseYAMLError(err, document.line)
		l.problems.add(name, line, "", "invalid YAML: "+message)
		return
	}
	fields, ok := decoded.(map[string]any)
	if !ok {
		return
	}
	obj := &unstructured.Unstructured{Object: fields}
	kind := model.Kind(obj.GetKind())
	if !strings.HasPrefix(obj.GetAPIVersion(), "argoproj.io/") ||
		(kind != model.KindWorkflowTemplate && kind != model.KindClusterWorkflowTemplate && kind != model.KindWorkflowEventBinding) {
		return
	}

	resource := &checkedResource{file: name, line: document.line}
	var root yamlv3.Node
	if yamlv3.Unmarshal(document.data, &root) == nil && len(root.Content) > 0 {
		resource.root = root.Content[0]
	}
	l.convert(resource, obj)
}

// convert converts obj with the server's code and keeps it.
func (l *resourceLoader) convert(resource *checkedResource, obj *unstructured.Unstructured) {
	// A cluster-scoped resource has no namespace, whatever namespace the
	// file sets, so it is keyed as the server keys it.
	switch {
	case obj.GetKind() == string(model.KindClusterWorkflowTemplate):
		obj.SetNamespace("")
	case obj.GetNamespace() == "":
		obj.SetNamespace(l.defaultNamespace)
	}

	// Conversion fills in the reference even when it fails.
	var err error
	if obj.GetKind() == string(model.KindWorkflowEventBinding) {
		var binding model.Binding
		binding, err = kube.BindingFromObject(obj)
		resource.ref = binding.Ref
		if err == nil && obj.GetName() != "" {
			resource.binding = &binding
		}
	} else {
		var template model.Template
		template, err = kube.TemplateFromObject(obj)
		resource.ref = template.Ref
		if err == nil && obj.GetName() != "" {
			resource.template = &template
		}
	}

	l.resources = append(l.resources, resource)
	if obj.GetName() == "" {
		// The server's loader rejects such a document, so nothing of it
		// is compiled or evaluated.
		l.problems.add(resource.file, resource.fieldLine("metadata"), resource.ref.String(), "metadata.name: missing: name the resource")
		return
	}
	if err != nil {
		resource.reportError(l.problems, err)
		return
	}

	if earlier, ok := l.byRef[resource.ref]; ok {
		l.problems.warn(resource.file, resource.line, resource.ref.String(),
			fmt.Sprintf("also defined at %s:%d; --event uses this later definition", earlier.file, earlier.line))
	}
	if l.byRef == nil {
		l.byRef = make(map[model.ResourceRef]*checkedResource)
	}
	l.byRef[resource.ref] = resource
	resource.compile(l.problems)
}

// fieldPattern finds the first field path in a conversion error's text.
var fieldPattern = regexp.MustCompile(`\bspec(\.[A-Za-z]+|\[\d+\])*`)

// reportError reports a conversion or dispatch error of the resource at the
// field the error names. The resource's name is left out of the message,
// because the line names it already.
//
// NOTE: these errors carry the field only in their text, so the line comes
// from the first spec... path in the text. Without one it is the document's
// first line, or for a binding whose template is missing the line of
// spec.submit.workflowTemplateRef.name.
func (r *checkedResource) reportError(problems *problemReport, err error) {
	message := err.Error()
	for _, preposition := range []string{" of ", " for "} {
		message = strings.Replace(message, preposition+r.ref.String(), "", 1)
	}

	line := r.line
	if field := fieldPattern.FindString(message); field != "" {
		line = r.fieldLine(field)
	} else if r.binding != nil && model.ErrorCode(err) == model.CodeNotFound {
		line = r.fieldLine("spec.submit.workflowTemplateRef.name")
	}
	problems.add(r.file, line, r.ref.String(), message)
}

// compile compiles the resource's expressions with the server's code. The
// server compiles a template only with an event expression and a binding
// only with a selector, so the others are left alone here too. Unlike the
// server, check compiles resources whatever their instance ID label.
func (r *checkedResource) compile(problems *problemReport) {
	var errs []error
	switch {
	case r.template != nil && r.template.HasEvent():
		errs = compileTemplateExpressions(*r.template)
	case r.binding != nil && r.binding.Selector != "":
		errs = compileBindingExpressions(*r.binding)
	}
	for _, err := range errs {
		r.reportExpressionError(problems, err)
	}
}

// reportExpressionError reports a *matcher.CompileError or
// *matcher.EvalError at the line of the expression where it failed.
func (r *checkedResource) reportExpressionError(problems *problemReport, err error) {
	var field string
	var cause error
	if compileErr, ok := errors.AsType[*matcher.CompileError](err); ok {
		field, cause = compileErr.Field, compileErr.Err
	} else if evalErr, ok := errors.AsType[*matcher.EvalError](err); ok {
		field, cause = evalErr.Field, evalErr.Err
	} else {
		r.reportError(problems, err)
		return
	}

	message, expressionLine := describeExpressionError(cause)
	line := r.fieldLine(field) + expressionLine - 1
	problems.add(r.file, line, r.ref.String(), field+": "+message)
}

// describeExpressionError returns the first line of expr's message with the
// column of the error, and the line of the expression it is on. expr's own
// text adds a snippet over several lines, which would break the one line per
// problem format.
func describeExpressionError(err error) (message string, line int) {
	if fileErr, ok := errors.AsType[*file.Error](err); ok && fileErr.Line > 0 {
		// Column is 0-based.
		return fmt.Sprintf("%s (column %d)", firstLine(fileErr.Message), fileErr.Column+1), fileErr.Line
	}
	return firstLine(err.Error()), 1
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// fieldLine returns the line in the file of the field's value, such as
// spec.arguments.parameters[1].valueFrom.expression, or of its deepest
// ancestor present in the document.
//
// NOTE: the line is exact for single-line values and literal block scalars
// (|). A folded (>) or quoted value that spans lines is reported from its
// first line on, so a later line of it is approximate.
func (r *checkedResource) fieldLine(field string) int {
	if r.root == nil {
		return r.line
	}
	node, line := r.root, r.root.Line
	for _, step := range parseFieldPath(field) {
		node = step.child(node)
		if node == nil {
			break
		}
		line = node.Line
		// A block scalar starts on the line after its | or > indicator.
		if node.Style&(yamlv3.LiteralStyle|yamlv3.FoldedStyle) != 0 {
			line++
		}
	}
	return r.line + line - 1
}

// pathStep is one step of a field path: a map key or a list index.
type pathStep struct {
	key   string
	index int // used when key is empty
}

// parseFieldPath splits a field path as matcher and kube write it:
// names joined by dots, list indexes as [1], and map keys that may contain
// dots as Go-quoted strings, as in labels["app.kubernetes.io/name"]. It stops
// at the first part it cannot read.
func parseFieldPath(field string) []pathStep {
	var steps []pathStep
	for field != "" {
		switch {
		case field[0] == '.':
			field = field[1:]
		case strings.HasPrefix(field, `["`):
			quoted, err := strconv.QuotedPrefix(field[1:])
			if err != nil {
				return steps
			}
			key, _ := strconv.Unquote(quoted)
			steps = append(steps, pathStep{key: key})
			field = strings.TrimPrefix(field[1+len(quoted):], "]")
		case field[0] == '[':
			end := strings.IndexByte(field, ']')
			if end < 0 {
				return steps
			}
			index, err := strconv.Atoi(field[1:end])
			if err != nil {
				return steps
			}
			steps = append(steps, pathStep{index: index})
			field = field[end+1:]
		default:
			end := strings.IndexAny(field, ".[")
			if end < 0 {
				end = len(field)
			}
			steps = append(steps, pathStep{key: field[:end]})
			field = field[end:]
		}
	}
	return steps
}

// child returns the node that the step selects in node, or nil.
func (s pathStep) child(node *yamlv3.Node) *yamlv3.Node {
	if node.Kind == yamlv3.AliasNode {
		node = node.Alias
	}
	switch {
	case s.key != "" && node.Kind == yamlv3.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == s.key {
				return node.Content[i+1]
			}
		}
	case s.key == "" && node.Kind == yamlv3.SequenceNode && s.index < len(node.Content):
		return node.Content[s.index]
	}
	return nil
}

// yamlDocument is one document of a file and the line it starts on.
type yamlDocument struct {
	data []byte
	line int
}

// separatorError is a "---" line with more than a comment after it, which
// the server's YAML reader rejects too.
type separatorError struct {
	line int
	text string
}

func (e *separatorError) Error() string {
	return fmt.Sprintf("invalid YAML: document separator %q has content after ---: move it to the next line", e.text)
}

// splitDocuments splits data at "---" lines the way the YAML reader of
// k8s.io/apimachinery does, and keeps the line each document starts on.
// Documents before an invalid separator are returned with the error.
func splitDocuments(data []byte) ([]yamlDocument, error) {
	var documents []yamlDocument
	current := yamlDocument{line: 1}
	for number := 1; len(data) > 0; number++ {
		end := bytes.IndexByte(data, '\n') + 1
		if end == 0 {
			end = len(data)
		}
		line := data[:end]
		data = data[end:]

		rest, isSeparator := bytes.CutPrefix(line, []byte("---"))
		if !isSeparator {
			current.data = append(current.data, line...)
			continue
		}
		if trimmed := bytes.TrimSpace(rest); len(trimmed) > 0 && trimmed[0] != '#' {
			return documents, &separatorError{line: number, text: string(bytes.TrimSpace(line))}
		}
		if len(current.data) > 0 {
			documents = append(documents, current)
		}
		current = yamlDocument{line: number + 1}
	}
	if len(current.data) > 0 {
		documents = append(documents, current)
	}
	return documents, nil
}

// yamlLinePattern finds the line in a YAML parser's error text, as in
// "yaml: line 3: mapping values are not allowed in this context".
var yamlLinePattern = regexp.MustCompile(`yaml: line (\d+): (.*)`)

// rebaseYAMLError returns the file line and the message of a YAML error in
// the document that starts at documentLine.
//
// NOTE: the YAML parsers report the line only in the error text, so it is
// read from there. When it is not found the document's first line is used.
func rebaseYAMLError(err error, documentLine int) (int, string) {
	match := yamlLinePattern.FindStringSubmatch(err.Error())
	if match == nil {
		return documentLine, err.Error()
	}
	line, _ := strconv.Atoi(match[1])
	return documentLine + line - 1, match[2]
}

// compileTemplateExpressions returns an error for every expression of t that
// does not compile. matcher.Compile stops at the first one, so after a
// failure each expression is compiled again on its own, in a copy of t that
// keeps the expression's field name.
func compileTemplateExpressions(t model.Template) []error {
	_, err := matcher.Compile(t)
	if err == nil {
		return nil
	}

	variants := []model.Template{t}
	variants[0].Parameters = nil
	for i, parameter := range t.Parameters {
		if parameter.Expression == "" {
			continue
		}
		variant := t
		variant.Expression = "true"
		variant.Parameters = onlyExpression(t.Parameters, i)
		variants = append(variants, variant)
	}
	return compileEach(variants, matcher.Compile, err)
}

// compileBindingExpressions is compileTemplateExpressions for a binding.
func compileBindingExpressions(b model.Binding) []error {
	_, err := matcher.CompileBinding(b)
	if err == nil || b.Submit == nil {
		return errorList(err)
	}

	selectorOnly := b
	selectorOnly.Submit = nil
	variants := []model.Binding{selectorOnly}
	withSubmit := func(change func(*model.Submit)) {
		variant := b
		variant.Selector = "true"
		variant.Submit = &model.Submit{TemplateRef: b.Submit.TemplateRef}
		change(variant.Submit)
		variants = append(variants, variant)
	}

	for i, parameter := range b.Submit.Parameters {
		if parameter.Expression != "" {
			withSubmit(func(s *model.Submit) { s.Parameters = onlyExpression(b.Submit.Parameters, i) })
		}
	}
	metadata := b.Submit.Metadata
	if metadata.Name != "" {
		withSubmit(func(s *model.Submit) { s.Metadata.Name = metadata.Name })
	}
	if metadata.GenerateName != "" {
		withSubmit(func(s *model.Submit) { s.Metadata.GenerateName = metadata.GenerateName })
	}
	// Sorted keys keep the order of the server's messages, and of the
	// output from run to run.
	for _, key := range slices.Sorted(maps.Keys(metadata.Labels)) {
		withSubmit(func(s *model.Submit) { s.Metadata.Labels = map[string]string{key: metadata.Labels[key]} })
	}
	for _, key := range slices.Sorted(maps.Keys(metadata.Annotations)) {
		withSubmit(func(s *model.Submit) { s.Metadata.Annotations = map[string]string{key: metadata.Annotations[key]} })
	}
	return compileEach(variants, matcher.CompileBinding, err)
}

// onlyExpression returns a copy of parameters in which only parameter i
// keeps its expression.
func onlyExpression(parameters []model.Parameter, i int) []model.Parameter {
	only := make([]model.Parameter, len(parameters))
	for j, parameter := range parameters {
		if j != i {
			parameter.Expression = ""
		}
		only[j] = parameter
	}
	return only
}

// compileEach compiles every variant and returns their errors. When none
// fails, which would mean the variants miss an expression, it returns
// whole, the error of the complete resource.
func compileEach[T any](variants []T, compile func(T) (*matcher.Program, error), whole error) []error {
	var errs []error
	for _, variant := range variants {
		if _, err := compile(variant); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return []error{whole}
	}
	return errs
}

func errorList(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}

// readCheckEvent builds the event of --event and its flags.
func readCheckEvent(opts checkOptions, stdin io.Reader) (*model.Event, error) {
	var body []byte
	var err error
	if opts.eventFile == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(opts.eventFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read --event %s: %w", opts.eventFile, err)
	}
	payload, err := matcher.DecodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("read --event %s: %w: pass a file holding one JSON document", opts.eventFile, err)
	}

	return &model.Event{
		ID:            checkEventID,
		Namespace:     opts.namespace,
		Discriminator: opts.discriminator,
		Payload:       payload,
		Headers:       opts.headers,
		// check does no access control, so the caller may use every
		// namespace, which a cluster-scoped event needs.
		Caller: model.Identity{Subject: opts.subject, Groups: []string(opts.groups), AllNamespaces: true},
	}, nil
}

// evaluateCheckEvent runs the server's dispatcher in dry-run mode over the
// resources, prints the Workflows it would create to stdout and reports the
// resources that fail for the event. It returns how many resources matched
// and how many Workflows were printed.
func evaluateCheckEvent(ctx context.Context, event model.Event, instanceID string, resources []*checkedResource, problems *problemReport, stdout io.Writer) (matched, workflows int, err error) {
	// Feed the server's catalog. Compile errors were reported already, and
	// the catalog leaves those resources out as the server does.
	catalog := matcher.NewCatalog(instanceID, nil)
	cluster := fileCluster{}
	byRef := make(map[model.ResourceRef]*checkedResource)
	for _, resource := range resources {
		byRef[resource.ref] = resource
		switch {
		case resource.template != nil:
			_ = catalog.Upsert(*resource.template)
			cluster[resource.ref] = *resource.template
		case resource.binding != nil:
			_ = catalog.UpsertBinding(*resource.binding)
		}
	}

	dispatcher := &workers.Dispatcher{Templates: catalog, Cluster: cluster, InstanceID: instanceID}
	for _, outcome := range dispatcher.Dispatch(ctx, event, true) {
		if outcome.Matched {
			matched++
		}
		if outcome.Err != nil {
			byRef[outcome.Ref].reportExpressionError(problems, outcome.Err)
			continue
		}
		if outcome.Workflow == nil {
			continue
		}
		document, err := yaml.Marshal(kube.WorkflowToObject(*outcome.Workflow).Object)
		if err != nil {
			return matched, workflows, fmt.Errorf("encode the Workflow of %s: %w", outcome.Ref, err)
		}
		if workflows > 0 {
			fmt.Fprintln(stdout, "---")
		}
		if _, err := stdout.Write(document); err != nil {
			return matched, workflows, fmt.Errorf("write the Workflow of %s: %w", outcome.Ref, err)
		}
		workflows++
	}
	return matched, workflows, nil
}

// fileCluster is the workers.Cluster of check: it reads templates from the
// checked files and creates nothing.
type fileCluster map[model.ResourceRef]model.Template

// GetWorkflow is never called, because check creates nothing.
func (c fileCluster) GetWorkflow(context.Context, string, string) (model.Workflow, error) {
	return model.Workflow{}, model.Errorf(model.CodeUnimplemented, "check creates no workflows")
}

// GetTemplate returns the template ref names in namespace, or the cluster
// template when ref.ClusterScope is set.
func (c fileCluster) GetTemplate(_ context.Context, _ model.Identity, namespace string, ref model.TemplateRef) (model.Template, error) {
	key := model.ResourceRef{Kind: model.KindWorkflowTemplate, Namespace: namespace, Name: ref.Name}
	if ref.ClusterScope {
		key = model.ResourceRef{Kind: model.KindClusterWorkflowTemplate, Name: ref.Name}
	}
	template, ok := c[key]
	if !ok {
		return model.Template{}, model.Errorf(model.CodeNotFound, "%s not found in the checked files: add its file to the paths", key)
	}
	return template, nil
}

// CreateWorkflow fails, because check only runs the dispatcher in dry-run
// mode, which never creates.
func (fileCluster) CreateWorkflow(context.Context, model.Identity, model.Workflow) (model.Workflow, error) {
	return model.Workflow{}, errors.New("check never creates Workflows")
}
