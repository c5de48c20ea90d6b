package conformance

import "net/http"

// What checks need beyond the URL and the token, as the Markdown table
// shows it.
const (
	needsObservation = "suite templates, and a dry run or the Workflow list"
	needsCreated     = "suite templates, and the Workflow list or a dry run"
	needsList        = "suite templates and the Workflow list"
	needsDryRun      = "suite templates and a dry run"
	needsScoped      = "a namespace-scoped token"
	needsBlocking    = "BlockWorkers (in-process only)"
)

// How Argo's server is known to differ, as of v4.
const (
	argoTypeChecks    = "type-checks expressions against each event, so a field read on an empty body does not compile"
	argoFailsAll      = "one failing binding fails the whole event with 500"
	argoRequestCtx    = "runs queued work with the request's context, which has ended"
	argoSecrets       = "shows x-gitlab-token and x-hook-uuid to expressions"
	argoMissingSecret = "responds with 403 to a request without a token when the webhook-clients Secret is missing"
	argoFloats        = "turns every JSON number into float64"
	argoEscapes       = "adds JSON escapes to string parameters"
)

// checks is the suite, in the order it runs. Checks that read what earlier
// ones left (the error shape, latency, the processed pipeline events) come
// after them.
var checks = []Check{
	// Routes and path forms.
	{ID: "routes.namespace", Statement: "POST /api/v1/events/{namespace} accepts an event for that namespace.",
		run: acceptsAt(func(r *run) string { return eventPath(r.target.Namespace, "") })},
	{ID: "routes.namespace-trailing-slash", Statement: "POST /api/v1/events/{namespace}/ is the same route, as Argo writes it.",
		run: acceptsAt(func(r *run) string { return eventPath(r.target.Namespace, "") + "/" })},
	{ID: "routes.discriminator", Statement: "POST /api/v1/events/{namespace}/{discriminator} accepts an event with a discriminator.",
		run: acceptsAt(func(r *run) string { return eventPath(r.target.Namespace, quietDiscriminator) })},
	{ID: "routes.cluster-scoped", Statement: "POST /api/v1/events/ accepts a cluster-scoped event from a cluster-scoped token.",
		run: acceptsClusterScoped(eventsPrefix)},
	{ID: "routes.cluster-scoped-discriminator", Statement: "POST /api/v1/events//{discriminator} accepts a cluster-scoped event with a discriminator.",
		run: acceptsClusterScoped(eventsPrefix + "/" + quietDiscriminator)},
	{ID: "routes.unknown-path", Statement: "A path that is no route gets 404 with code 5, an events path with an extra segment included.",
		run: checkUnknownPath},
	{ID: "routes.method-not-allowed", Statement: "A method other than POST on the events endpoint gets 405 with code 12 and Allow: POST.",
		run: checkMethodNotAllowed},

	// Body handling.
	{ID: "body.any-json-value", Statement: "Any single JSON value is accepted as the body: object, array, string, number, bool or null.",
		run: bodiesAccepted(`{"a": 1}`, `[1, 2]`, `"text"`, `-1.5e3`, `false`, `null`, "  {}\n")},
	{ID: "body.empty", Statement: "An empty body is accepted.",
		run: bodiesAccepted("")},
	{ID: "body.content-type-ignored", Statement: "A JSON body is accepted whatever its Content-Type, form encoding (curl -d) included.",
		run: checkContentTypeIgnored},
	{ID: "body.invalid-json", Statement: "A body that is not JSON gets 400 with code 3.",
		run: bodiesRejected(http.StatusBadRequest, `{"message":`, `{'a': 1}`, `nope`)},
	{ID: "body.trailing-bytes", Statement: "Bytes after the first JSON value, a second value included, get 400 with code 3.",
		run: bodiesRejected(http.StatusBadRequest, `{} {}`, `{}x`, `1 2`, `"a""b"`)},
	{ID: "body.at-limit", Statement: "A body of exactly the size limit is accepted.", Needs: "the server's limit, 2 MiB by default",
		run: checkBodyAtLimit},
	{ID: "body.over-limit", Statement: "A body one byte over the size limit gets 413 with code 8.", Needs: "the server's limit, 2 MiB by default",
		run: checkBodyOverLimit},

	// Authentication.
	{ID: "auth.missing-token", Statement: "An event without an Authorization header or a webhook signature gets 401 with code 16.",
		ArgoDiffers: argoMissingSecret, run: checkMissingToken},
	{ID: "auth.malformed-token", Statement: "An Authorization header that is not Bearer with a token gets 401 with code 16.",
		run: checkMalformedToken},
	{ID: "auth.unknown-token", Statement: "A bearer token the server does not know gets 401 with code 16.",
		run: checkUnknownToken},
	{ID: "auth.scoped-own-namespace", Statement: "A namespace-scoped token may send events to its namespace.", Needs: needsScoped,
		run: checkScopedOwnNamespace},
	{ID: "auth.scoped-other-namespace", Statement: "A namespace-scoped token gets 403 with code 7 for another namespace.", Needs: needsScoped,
		run: checkScopedOtherNamespace},
	{ID: "auth.scoped-cluster-scoped", Statement: "A namespace-scoped token gets 403 with code 7 for the empty namespace.", Needs: needsScoped,
		run: checkScopedClusterScoped},
	{ID: "response.no-secret-echo", Statement: "A rejection never repeats the token or webhook secret that was sent.",
		run: checkNoSecretEcho},
	{ID: "response.event-id", Statement: "An accepted event gets 200 with a JSON body that carries its event ID.", Beyond: true,
		run: checkEventID},

	// The expression environment.
	{ID: "env.reference-example", Statement: "The reference example creates a Workflow whose parameter message is the event's message.",
		Needs: "suite templates, and the Workflow list or a dry run; its subject in the fixtures is admin", run: checkReferenceExample},
	{ID: "env.event-and-payload", Statement: "Expressions see the body as both event and payload.", Needs: needsObservation,
		run: checkEventAndPayload},
	{ID: "env.any-json-value", Statement: "Expressions see any JSON body as that value, sent with form encoding or not.", Needs: needsObservation,
		run: checkAnyJSONValueSeen},
	{ID: "env.empty-body-null", Statement: "Expressions see an empty body as null, and a guarded field read on it compiles.", Needs: needsObservation,
		ArgoDiffers: argoTypeChecks, run: checkEmptyBodyNull},
	{ID: "env.discriminator-and-namespace", Statement: "Expressions see the discriminator and the namespace of the path.", Needs: needsObservation,
		run: checkDiscriminatorAndNamespace},
	{ID: "env.claim-set", Statement: "metadata.claimSet holds the caller's subject as sub and its groups as a list.", Needs: needsObservation,
		run: checkClaimSet},
	{ID: "env.header-names-lowercased", Statement: "Header names in metadata are lowercase whatever case was sent.", Needs: needsObservation,
		run: checkHeaderNamesLowercased},
	{ID: "env.header-values-listed", Statement: "Each header in metadata is the list of its values, in the order sent.", Needs: needsObservation,
		run: checkHeaderValuesListed},
	{ID: "env.only-x-headers", Statement: "metadata holds no header whose name does not start with x-.", Needs: needsObservation,
		run: checkOnlyXHeaders},
	{ID: "env.secret-headers-hidden", Statement: "metadata never holds x-gitlab-token, x-hook-uuid, x-hub-signature or x-hub-signature-256.",
		Needs: needsObservation, ArgoDiffers: argoSecrets, run: checkSecretHeadersHidden},
	{ID: "env.exact-integers", Statement: "JSON integers that fit in int64 keep every digit and integer arithmetic.", Needs: needsObservation,
		ArgoDiffers: argoFloats, run: checkExactIntegers},
	{ID: "env.missing-field-nil", Statement: "A field the body lacks is nil, not an error, and ?. with ?? reads into missing objects.",
		Needs: needsObservation, run: checkMissingFieldNil},

	// Parameter encoding.
	{ID: "params.string-verbatim", Statement: "A string parameter is the string itself: quotes, newlines, tabs, backslashes and % unescaped.",
		Needs: needsCreated, ArgoDiffers: argoEscapes, run: expectParams(map[string]string{"text": paramsText})},
	{ID: "params.integer", Statement: "An integer parameter is its decimal digits.", Needs: needsCreated,
		run: expectParams(map[string]string{"integer": "42", "negative": "-7"})},
	{ID: "params.float", Statement: "A float parameter is its shortest decimal form without an exponent.", Needs: needsCreated,
		run: expectParams(map[string]string{"float": "2.5", "fraction": "0.1"})},
	{ID: "params.bool", Statement: "A bool parameter is true or false.", Needs: needsCreated,
		run: expectParams(map[string]string{"truth": "true", "falsehood": "false"})},
	{ID: "params.object-compact", Statement: "An object parameter is compact JSON without HTML escaping.", Needs: needsCreated,
		run: expectCompactParam("object", `{"b": [1, 2], "a": "<x>"}`)},
	{ID: "params.array-compact", Statement: "An array parameter is compact JSON.", Needs: needsCreated,
		run: expectCompactParam("array", `[1, "two", null, {"k": "v"}]`)},
	{ID: "params.nil-empty", Statement: "A nil parameter without a default is the empty string.", Needs: needsCreated,
		run: expectParams(map[string]string{"absent": ""})},
	{ID: "params.nil-default", Statement: "A nil parameter with a default takes the default.", Needs: needsCreated,
		run: expectParams(map[string]string{"absentDefault": parameterDefault})},

	// Matching and creating Workflows.
	{ID: "matching.every-match-creates", Statement: "Every template whose expression matches an event creates one Workflow.", Needs: needsCreated,
		run: checkEveryMatchCreates},
	{ID: "matching.workflow-shape", Statement: "A Workflow references its template, is named after it, and carries the template and creator labels.",
		Needs: needsCreated, run: checkWorkflowShape},
	{ID: "matching.event-id-stamped", Statement: "Every Workflow an event creates carries the event ID of the response.", Needs: needsList,
		Beyond: true, run: checkEventIDStamped},
	{ID: "matching.failure-isolated", Statement: "A template whose expression fails to compile or evaluate, or is not a bool, blocks no other template.",
		Needs: needsCreated, ArgoDiffers: argoFailsAll, run: checkFailureIsolated},
	{ID: "matching.errors-in-dry-run", Statement: "A dry run shows the error of each template that failed for the event.", Needs: needsDryRun,
		Beyond: true, run: checkErrorsInDryRun},
	{ID: "matching.cluster-template", Statement: "A ClusterWorkflowTemplate fires for a namespaced event and its Workflow runs in that namespace.",
		Needs: needsCreated, run: checkClusterTemplate},
	{ID: "matching.binding", Statement: "A WorkflowEventBinding submits the template it references with parameters from the event.",
		Needs: needsCreated, run: checkBinding},

	// Around the endpoint.
	{ID: "around.list-workflows", Statement: "GET /api/v1/workflows/{namespace} lists Workflows for a token, and gets 401 without one.",
		run: checkListWorkflows},
	{ID: "around.dry-run", Statement: "?dryRun=All shows what each template would do and creates nothing.", Needs: needsList,
		Beyond: true, run: checkDryRun},
	{ID: "around.health", Statement: "GET /healthz and GET /readyz return 200 on a running server.", Beyond: true,
		run: checkHealth},

	// The pipeline.
	{ID: "pipeline.bounded", Statement: "With the workers blocked, exactly the pipeline size of events is accepted, then 503 with code 14 and Retry-After.",
		Needs: needsBlocking, run: checkPipelineBounded},
	{ID: "pipeline.processed-once", Statement: "Every accepted event is processed once after the workers are released, the request long finished.",
		Needs: needsBlocking + ", the Workflow list", ArgoDiffers: argoRequestCtx, run: checkProcessedOnce},

	// Checks over every response of the run.
	{ID: "response.error-shape", Statement: `Every error response is JSON {"code", "message"} with the gRPC code of its status.`,
		run: checkErrorShape},
	{ID: "latency.admission", Statement: "Every response of the events endpoint in the run came in under 10 seconds.",
		run: checkLatency},
}
