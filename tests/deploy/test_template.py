"""deploy/azuredeploy.json: the ARM template that deploys the app on Flex Consumption.

Nothing here reaches Azure. What is checked, offline:

(a) the template, each nested template and each resource against Microsoft's
    published ARM schemas (Azure/azure-resource-manager-schemas: the deployment
    template schema and the resource type's schema at the api-version used),
    read from ARM_SCHEMAS_DIR or ../shared/specs/arm-schemas (see arm_schemas.py);
    without them this part says "schemas not available: skipped schema validation"
    and the rest still runs;
(b) every "[...]" expression parses, names only ARM template functions, and
    evaluates with the example parameters: every parameters()/variables() name
    exists, every id that resourceId()/extensionResourceId()/reference() and
    dependsOn compute names a resource of the template (or the watched
    workspace, or a built-in role), and every name has the segments its type needs;
(c) the app settings the template sets are settings the handler reads, as the
    handler lists them itself (`handler --help`), plus the Functions host's
    identity-based storage settings; the ones a deployment needs are there, and
    none that Flex Consumption rejects or that only the platform may set;
(d) the Flex Consumption shape: runtime custom 1.0, 512 MB instances, a
    maximum instance count Flex accepts, system identity, Entra ID only for App
    Insights and storage, least-privilege role assignments, the Event Grid
    subscription to the function folder of this repository, and the four alerts.
"""

import json
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import arm_expressions as ax  # noqa: E402
import arm_schemas  # noqa: E402

REPO = Path(os.environ.get("REPO_DIR") or Path(__file__).resolve().parents[2])
TEMPLATE_PATH = REPO / "deploy" / "azuredeploy.json"
PARAMETERS_PATH = REPO / "deploy" / "azuredeploy.parameters.example.json"

# Built-in roles the template assigns, by id, from Microsoft Learn "Azure built-in
# roles" (role-based-access-control/built-in-roles/{storage,monitor,general}).
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
}

# App settings that are not the handler's: the Functions host's identity-based
# connection to its storage (Learn: functions-reference, "Connecting to host
# storage with an identity": the three service URIs, which work in every cloud;
# __accountName is the public-cloud-only shorthand). The handler reads the table
# URI too (the run table).
HOST_SETTINGS = {"AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri",
                 "AzureWebJobsStorage__tableServiceUri"}
# Settings a deployment of this template must set.
REQUIRED_SETTINGS = {"SUBSCRIPTION_ID", "AML_RESOURCE_GROUP", "AML_WORKSPACE_NAME",
                     "APPLICATIONINSIGHTS_CONNECTION_STRING",
                     "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} | HOST_SETTINGS
# Never in the template: Flex Consumption's deprecated settings (Learn:
# functions-app-settings, "Flex Consumption plan deprecations"), key-based
# connections (shared keys and App Insights local auth are off), the storage
# account-name shorthand (Learn: not valid in sovereign clouds), settings the
# platform or the host sets, and secrets (the app uses its managed identity).
FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_NODE_DEFAULT_VERSION",
    "AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY", "APPINSIGHTS_CONNECTION_STRING",
    "AzureWebJobsStorage__accountName",
    "FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT", "FUNCTIONS_APP_ROOT_PATH",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID",
    "AZURE_CLIENT_SECRET", "SERVICE_PRINCIPAL_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
}
AML_EVENT_TYPES = {f"Microsoft.MachineLearningServices.{t}" for t in (
    "RunStatusChanged", "RunCompleted", "ModelRegistered", "ModelDeployed",
    "DatasetDriftDetected")}
SCOPE = {"subscriptionId": "11111111-1111-4111-8111-111111111111",
         "resourceGroup": "aml-events", "location": "westeurope",
         "tenantId": "22222222-2222-4222-8222-222222222222"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def strings(value, path="$"):
    """(path, string) of every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k, f"{path}.<key>")
            yield from strings(v, f"{path}.{k}")


def flat_resources(template):
    """Every resource of one template level, child resources (a "resources" array
    inside a resource) flattened with their full type and name."""
    out = []

    def walk(resources, parent):
        for r in resources:
            if parent:
                r = dict(r, type=f"{parent['type']}/{r['type']}",
                         name=["__child__", parent["name"], r["name"]], _parent=parent,
                         _own_name=r["name"])
            out.append(r)
            walk(r.get("resources", []), r)
    walk(template.get("resources", []), None)
    return out


def parameter_values(template, given):
    """Values of a template's parameters: given, else the default (evaluated)."""
    values = {}
    ev = ax.Evaluator(SCOPE, values, template.get("variables", {}))
    for name, spec in template.get("parameters", {}).items():
        if name in given:
            values[name] = given[name]
        elif "defaultValue" in spec:
            values[name] = ev.value(spec["defaultValue"])
        else:
            raise AssertionError(f"parameter {name} has no value and no default")
    return values


class Deployment:
    """One template evaluated at one scope: resources with their ids, every id
    the expressions computed, and nested deployments evaluated in turn."""

    def __init__(self, template, scope, given, label="template"):
        self.template, self.scope, self.label = template, scope, label
        self.parameters = parameter_values(template, given)
        self.ev = ax.Evaluator(scope, self.parameters, template.get("variables", {}))
        self.computed_ids = []
        self.resources = []  # (resource, type, name, id)
        self.nested = []
        for r in flat_resources(template):
            rtype = r["type"]
            if isinstance(r["name"], list):  # a child: parent name / own name
                name = f"{self.value(r['name'][1])}/{self.value(r['name'][2])}"
            else:
                name = self.value(r["name"])
            self.resources.append((r, rtype, name, self.resource_id(r, rtype, name)))

    def value(self, v):
        before = len(self.ev.references)
        out = self.ev.value(v)
        self.computed_ids.extend(t for _, t in self.ev.references[before:])
        return out

    def base(self, sub=None, rg=None):
        return (f"/subscriptions/{sub or self.scope['subscriptionId']}"
                f"/resourceGroups/{rg or self.scope['resourceGroup']}")

    def resource_id(self, r, rtype, name):
        parts, names = rtype.split("/"), name.split("/")
        if len(names) != len(parts) - 1:
            raise AssertionError(f"{self.label}: {rtype} named {name!r}: "
                                 f"{len(parts) - 1} segment(s) expected")
        tail = f"providers/{parts[0]}" + "".join(
            f"/{t}/{n}" for t, n in zip(parts[1:], names))
        if "scope" in r:
            scope = self.value(r["scope"])
            if not scope.startswith("/"):
                scope = f"{self.base()}/providers/{scope}"
            return f"{scope}/{tail}"
        if rtype.lower() == "microsoft.authorization/roledefinitions":
            return f"/subscriptions/{self.scope['subscriptionId']}/{tail}"
        if rtype.lower() == "microsoft.resources/deployments":
            sub = self.value(r.get("subscriptionId", self.scope["subscriptionId"]))
            rg = self.value(r.get("resourceGroup", self.scope["resourceGroup"]))
            return f"{self.base(sub, rg)}/{tail}"
        return f"{self.base()}/{tail}"


def evaluate_all(template, given):
    """The top deployment and every nested one (inner scope), all evaluated: every
    expression of every resource, output and parameter default runs."""
    top = Deployment(template, SCOPE, given)
    todo, done = [top], []
    while todo:
        d = todo.pop()
        done.append(d)
        for r, rtype, name, rid in d.resources:
            for key, v in r.items():
                if key in ("resources", "_parent", "_own_name", "name", "type"):
                    continue
                if key == "properties" and rtype.lower() == "microsoft.resources/deployments":
                    props = r["properties"]
                    scope_opt = props.get("expressionEvaluationOptions", {}).get("scope", "")
                    if scope_opt.lower() != "inner":
                        raise AssertionError(f"{name}: nested templates must use the inner scope")
                    given_inner = {k: d.value(p["value"]) for k, p in props.get("parameters", {}).items()}
                    scope = dict(d.scope, subscriptionId=d.value(r.get("subscriptionId", d.scope["subscriptionId"])),
                                 resourceGroup=d.value(r.get("resourceGroup", d.scope["resourceGroup"])))
                    todo.append(Deployment(props["template"], scope, given_inner, f"{name}.template"))
                    continue
                d.value(v)
        d.outputs = {k: d.value(o["value"]) for k, o in d.template.get("outputs", {}).items()}
    return done


def reference_problems(template, given):
    """What does not resolve: dependsOn entries that name no resource of the same
    template, and ids (resourceId(), extensionResourceId(), reference(), ...)
    that name nothing the template deploys, the watched workspace or a built-in
    role. Unknown parameters/variables and malformed ids raise while evaluating."""
    problems = []
    deployments = evaluate_all(template, given)
    ids = {rid.lower() for d in deployments for _, _, _, rid in d.resources}
    workspace = given["amlWorkspaceId"].lower()

    def known(rid):
        return (rid in ids or rid == workspace or any(
            rid.endswith(f"/providers/microsoft.authorization/roledefinitions/{g}")
            for g in BUILT_IN_ROLES))

    for d in deployments:
        names = {}
        for _, _, name, rid in d.resources:
            names.setdefault(name.lower(), []).append(rid)
        local = {rid.lower() for _, _, _, rid in d.resources}
        for r, rtype, name, rid in d.resources:
            for dep in r.get("dependsOn", []):
                target = d.value(dep).lower()
                if target.startswith("/") and target not in local:
                    problems.append(f"{d.label}: {name} dependsOn {dep}: no such resource here")
                elif not target.startswith("/") and len(names.get(target, [])) != 1:
                    problems.append(f"{d.label}: {name} dependsOn {dep}: not one resource")
        for target in d.computed_ids:
            if not isinstance(target, str) or not known(target.lower()):
                problems.append(f"{d.label}: reference to {target}, which nothing deploys")
        # Every resourceId()-like call of this template level (nested templates
        # are their own Deployment).
        for path, s in strings({k: v for k, v in d.template.items() if k != "resources"}):
            check_ids(d, path, s, known, problems)
        for i, (r, _, _, _) in enumerate(d.resources):
            body = {k: v for k, v in r.items() if k not in ("_parent",)}
            if r.get("type") == "Microsoft.Resources/deployments":
                body["properties"] = {k: v for k, v in body["properties"].items() if k != "template"}
            body.pop("resources", None)
            for path, s in strings(body, f"resource {i}"):
                check_ids(d, path, s, known, problems)
    return problems


def check_ids(d, path, s, known, problems):
    if not ax.is_expression(s):
        return
    for call in ax.calls(ax.parse(s)):
        if call[1].lower() in ("resourceid", "subscriptionresourceid", "extensionresourceid"):
            rid = d.ev.eval(call)
            if not known(rid.lower()):
                problems.append(f"{d.label} {path}: {rid} is not deployed by the template")


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = load(TEMPLATE_PATH)
        cls.example = load(PARAMETERS_PATH)
        cls.given = {k: v["value"] for k, v in cls.example["parameters"].items()}
        cls.deployments = evaluate_all(cls.template, cls.given)
        cls.top = cls.deployments[0]
        cls.site = next(r for r, t, _, _ in cls.top.resources if t == "Microsoft.Web/sites")

    # --- (a) published schemas ---------------------------------------------------
    def test_a_schemas(self):
        folder, looked = arm_schemas.find_schemas(REPO)
        if folder is None:
            print(f"\nschemas not available: skipped schema validation (looked in {looked}; "
                  "set ARM_SCHEMAS_DIR to a checkout of Azure/azure-resource-manager-schemas)",
                  flush=True)
            return
        store = arm_schemas.SchemaStore(folder)
        problems = arm_schemas.validate_template(store, self.template)
        self.assertEqual(problems, [], "\n".join(problems))
        problems = arm_schemas.validate_parameters(store, self.example)
        self.assertEqual(problems, [], "\n".join(problems))
        # The validation is not vacuous: the same schemas refuse a wrong runtime
        # name, a wrong Event Grid destination type and an unknown api-version.
        for mutate, what in (
                (lambda t: self.site_of(t)["properties"]["functionAppConfig"]["runtime"]
                 .__setitem__("name", "c"), "runtime name"),
                (lambda t: self.subscriptions_of(t)[0]["properties"]["destination"]
                 .__setitem__("endpointType", "AzureFunctions"), "destination type"),
                (lambda t: self.site_of(t).__setitem__("apiVersion", "2024-11-02"), "api-version")):
            broken = json.loads(json.dumps(self.template))
            mutate(broken)
            self.assertNotEqual(arm_schemas.validate_template(store, broken), [],
                                f"the schemas accepted a wrong {what}")
        print(f"\nvalidated against the published schemas in {folder}", flush=True)

    @staticmethod
    def site_of(t):
        return next(r for r in t["resources"] if r["type"] == "Microsoft.Web/sites")

    @staticmethod
    def subscriptions_of(t):
        return [r for _, r in arm_schemas.resources_of(t)
                if r["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions"]

    # --- (b) expressions ---------------------------------------------------------------
    def test_b_every_expression_parses_with_known_functions(self):
        count = 0
        for path, s in strings(self.template):
            if not ax.is_expression(s):
                continue
            count += 1
            try:
                tree = ax.parse(s)
            except ax.ExpressionError as e:
                self.fail(f"{path}: {s}: {e}")
            for call in ax.calls(tree):
                self.assertIn(call[1].lower(), ax.KNOWN_FUNCTIONS, f"{path}: {call[1]}()")
        self.assertGreater(count, 100)

    def test_b_parser_refuses_what_arm_refuses(self):
        for bad in ("[concat('a', 'b'", "[format('x')]]", "[parameters('x')).y]", "['it's']",
                    "[f(1,)]", "[.x]"):
            with self.assertRaises(ax.ExpressionError, msg=bad):
                ax.parse(bad)
        self.assertEqual(ax.parse("[split('it''s', ',')[0]]"),
                         ("index", ("call", "split", [("str", "it's"), ("str", ",")]), ("int", 0)))
        self.assertFalse(ax.is_expression("[[not an expression]"))
        ev = ax.Evaluator(SCOPE, {}, {"v": "[parameters('missing')]"})
        with self.assertRaises(ax.ExpressionError):
            ev.value("[variables('v')]")
        with self.assertRaises(ax.ExpressionError):  # two segments for a child type
            ev.value("[resourceId('Microsoft.Storage/storageAccounts/tableServices', 'a')]")

    def test_b_every_id_and_dependency_resolves(self):
        problems = reference_problems(self.template, self.given)
        self.assertEqual(problems, [], "\n".join(problems))
        # Not vacuous: a dependency on nothing, an unknown parameter, a name with
        # the wrong number of segments and an id of a resource nobody deploys fail.
        for mutate in (
                lambda t: t["resources"][1]["dependsOn"].append(
                    "[resourceId('Microsoft.OperationalInsights/workspaces', 'other')]"),
                lambda t: t["resources"][0].__setitem__("location", "[parameters('region')]"),
                lambda t: t["resources"][3].__setitem__("name", "[parameters('storageAccountName')]"),
                lambda t: t["outputs"]["appInsightsResourceId"].__setitem__(
                    "value", "[resourceId('Microsoft.Insights/components', 'elsewhere')]")):
            broken = json.loads(json.dumps(self.template))
            mutate(broken)
            try:
                found = reference_problems(broken, self.given)
            except (AssertionError, ax.ExpressionError) as e:
                found = [str(e)]
            self.assertNotEqual(found, [])

    # --- (c) app settings ---------------------------------------------------------------
    def handler_settings(self):
        """The settings the handler reads, as `handler --help` lists them (the
        handler's one table of settings, core/config.c): after the "Settings"
        line, one line per setting, "  NAME" or "  NAME (or ALIAS)"."""
        exe = os.environ.get("HANDLER_BIN") or str(REPO / "build" / "handler")
        if not os.access(exe, os.X_OK):
            self.fail(f"no handler executable at {exe} (build it, or set HANDLER_BIN)")
        out = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=10).stdout
        lines = out.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("Settings")), None)
        self.assertIsNotNone(start, "handler --help has no Settings section:\n" + out)
        names = set()
        for line in lines[start + 1:]:
            m = re.match(r"^  ([A-Za-z][A-Za-z0-9_]*)(?: \(or ([A-Za-z][A-Za-z0-9_]*)\))?$", line)
            if m:
                names.update(n for n in m.groups() if n)
        self.assertGreater(len(names), 10, out)
        return names, out

    @staticmethod
    def binding_settings():
        """App settings the functions' bindings name as %NAME% (the host resolves
        them, e.g. a timer's schedule): a deployment must set each one."""
        names = set()
        for spec in REPO.glob("*/function.json"):
            for _, text in strings(load(spec)):
                names |= set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", text))
        return names

    def test_c_app_settings_are_the_handlers(self):
        settings = [s["name"] for s in self.site["properties"]["siteConfig"]["appSettings"]]
        self.assertEqual(len(settings), len(set(settings)), "a setting is set twice")
        bindings = self.binding_settings()
        for name in bindings:
            self.assertIn(name, settings, f"a function.json binding names %{name}%")
        handler, help_text = self.handler_settings()
        self.assertTrue(REQUIRED_SETTINGS - HOST_SETTINGS <= handler,
                        "handler --help does not list the settings it reads:\n" + help_text)
        for name in settings:
            self.assertNotIn(name, FORBIDDEN_SETTINGS)
            self.assertTrue(name in handler or name in HOST_SETTINGS or name in bindings,
                            f"{name} is set by the template but the handler does not read it "
                            "(not in handler --help), it is not a host storage setting and "
                            "no binding names it")
        for name in REQUIRED_SETTINGS:
            self.assertIn(name, settings)
        values = {s["name"]: self.top.value(s["value"])
                  for s in self.site["properties"]["siteConfig"]["appSettings"]}
        ws = self.given["amlWorkspaceId"].split("/")
        self.assertEqual((values["SUBSCRIPTION_ID"], values["AML_RESOURCE_GROUP"],
                          values["AML_WORKSPACE_NAME"]), (ws[2], ws[4], ws[8]))
        self.assertEqual(values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"], "Authorization=AAD")
        for service in ("blob", "queue", "table"):  # the account's own endpoints, any cloud
            value = str(values[f"AzureWebJobsStorage__{service}ServiceUri"])
            self.assertTrue(value.endswith(f".primaryEndpoints.{service}>"), value)
        for name, v in values.items():
            self.assertIsInstance(v, (str, ax.Opaque), f"{name}: app settings are strings")

    # --- (d) the Flex Consumption shape -------------------------------------------------
    def test_d_flex_consumption_app(self):
        plan = next(r for r, t, _, _ in self.top.resources if t == "Microsoft.Web/serverfarms")
        self.assertEqual(plan["sku"], {"tier": "FlexConsumption", "name": "FC1"})
        self.assertTrue(plan["properties"]["reserved"])
        site = self.site
        self.assertEqual(site["kind"], "functionapp,linux")
        self.assertEqual(site["identity"], {"type": "SystemAssigned"})
        config = site["properties"]["functionAppConfig"]
        self.assertEqual(config["runtime"], {"name": "custom", "version": "1.0"})
        self.assertEqual(config["scaleAndConcurrency"]["instanceMemoryMB"], 512)
        count = self.top.value(config["scaleAndConcurrency"]["maximumInstanceCount"])
        self.assertTrue(40 <= count <= 1000, count)
        storage = config["deployment"]["storage"]
        self.assertEqual((storage["type"], storage["authentication"]),
                         ("blobContainer", {"type": "SystemAssignedIdentity"}))
        self.assertTrue(self.top.value(storage["value"]).endswith("app-package"))
        ai = next(r for r, t, _, _ in self.top.resources if t == "Microsoft.Insights/components")
        self.assertTrue(ai["properties"]["DisableLocalAuth"])
        self.assertIn("WorkspaceResourceId", ai["properties"])
        account = next(r for r, t, _, _ in self.top.resources if t == "Microsoft.Storage/storageAccounts")
        self.assertFalse(account["properties"]["allowSharedKeyAccess"])
        self.assertFalse(account["properties"]["allowBlobPublicAccess"])
        # The folder the subscription names is this repository's function.
        function = self.top.value(self.template["variables"]["functionName"])
        binding = load(REPO / function / "function.json")["bindings"]
        self.assertEqual([b["type"] for b in binding], ["eventGridTrigger"])
        # The package: host.json's executable, one deploy when a URL is given.
        onedeploy = [r for r, t, _, _ in self.top.resources if t == "Microsoft.Web/sites/extensions"]
        self.assertEqual(len(onedeploy), 1)
        self.assertEqual(onedeploy[0]["_own_name"], "onedeploy")
        self.assertFalse(onedeploy[0]["properties"]["remoteBuild"])

    def test_d_role_assignments_are_least_privilege(self):
        wanted = {  # role -> scope type, for the app's identity and the topic's
            "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",
            "Storage Table Data Contributor": "Microsoft.Storage/storageAccounts",
            "Monitoring Metrics Publisher": "Microsoft.Insights/components",
            "Storage Blob Data Contributor": "Microsoft.Storage/storageAccounts/blobServices/containers",
        }
        found = {}
        for d in self.deployments:
            for r, t, name, rid in d.resources:
                if t != "Microsoft.Authorization/roleAssignments":
                    continue
                role = d.value(r["properties"]["roleDefinitionId"]).rsplit("/", 1)[-1]
                scope = rid.split("/providers/Microsoft.Authorization/")[0]
                self.assertEqual(r["properties"]["principalType"], "ServicePrincipal")
                found[BUILT_IN_ROLES.get(role, "custom or Reader")] = scope
        for role, scope_type in wanted.items():
            self.assertIn(role, found)
            provider_path = found[role].split("/providers/", 1)[1]
            types = "/".join([provider_path.split("/")[0]] + provider_path.split("/")[1::2])
            self.assertEqual(types, scope_type, role)
        self.assertTrue(found["custom or Reader"].endswith(self.given["amlWorkspaceId"].split("/providers/")[1]))
        inner = next(d for d in self.deployments if d.label.endswith("-workspace.template"))
        role = next(r for r, t, _, _ in inner.resources if t == "Microsoft.Authorization/roleDefinitions")
        actions = inner.value(role["properties"]["permissions"][0]["actions"])
        self.assertTrue(all(a.startswith("Microsoft.MachineLearningServices/workspaces/")
                            and a.endswith("/read") for a in actions), actions)

    def test_d_event_grid(self):
        inner = [d for d in self.deployments if d.label.endswith(".template")]
        topic = next(r for d in inner for r, t, _, _ in d.resources
                     if t == "Microsoft.EventGrid/systemTopics")
        self.assertEqual(topic["properties"]["topicType"], "Microsoft.MachineLearningServices.Workspaces")
        self.assertEqual(topic["identity"], {"type": "SystemAssigned"})
        subs = [(d, r) for d in inner for r, t, _, _ in d.resources
                if t == "Microsoft.EventGrid/systemTopics/eventSubscriptions"]
        types = set()
        for d, r in subs:
            p = r["properties"]
            self.assertEqual(p["destination"]["endpointType"], "AzureFunction")
            target = d.value(p["destination"]["properties"]["resourceId"])
            self.assertTrue(target.endswith("/functions/function_app"), target)
            self.assertEqual(p["destination"]["properties"]["maxEventsPerBatch"], 1)
            self.assertEqual(p["retryPolicy"], {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440})
            dl = p["deadLetterWithResourceIdentity"]
            self.assertEqual(dl["identity"], {"type": "SystemAssigned"})
            self.assertEqual(dl["deadLetterDestination"]["endpointType"], "StorageBlob")
            types |= set(d.value(p["filter"]["includedEventTypes"]))
        self.assertEqual(types, AML_EVENT_TYPES)

    def test_d_alerts(self):
        rules = {self.top.value(r["name"]).rsplit("-", 2)[-2:][0]: r for r, t, _, _ in self.top.resources
                 if t == "Microsoft.Insights/scheduledQueryRules"}
        queries = [self.top.value(r["properties"]["criteria"]["allOf"][0]["query"])
                   for r, t, _, _ in self.top.resources if t == "Microsoft.Insights/scheduledQueryRules"]
        self.assertEqual(len(queries), 4, rules)
        text = "\n".join(queries)
        for name in ("AmlRunStuck", "AmlEventRejected", "AmlActiveRuns", "azureml.PipelineRun",
                     "Failed"):
            self.assertIn(name, text)
        group = next(r for r, t, _, _ in self.top.resources if t == "Microsoft.Insights/actionGroups")
        self.assertEqual(self.top.value(group["properties"]["emailReceivers"][0]["emailAddress"]),
                         self.given["alertEmail"])
        self.assertLessEqual(len(group["properties"]["groupShortName"]), 12)

    def test_host_json_holds_what_the_host_reads(self):
        # host.json keys the Functions host v4 reads for this app (Learn:
        # functions-host-json; custom handlers: functions-custom-handlers).
        host = load(REPO / "host.json")
        self.assertLessEqual(set(host), {"version", "logging", "customHandler",
                                         "extensionBundle", "functionTimeout"})
        self.assertEqual(host["version"], "2.0")
        # enableForwardingHttpRequest only concerns HTTP-triggered functions (none
        # here) and false is the host's default (HttpWorkerOptions).
        self.assertEqual(set(host["customHandler"]), {"description"})
        self.assertEqual(set(host["customHandler"]["description"]),
                         {"defaultExecutablePath", "workingDirectory", "arguments"})
        self.assertEqual(host["extensionBundle"]["id"], "Microsoft.Azure.Functions.ExtensionBundle")
        self.assertTrue(host["extensionBundle"]["version"].startswith("[4."))
        # Flex Consumption: default 30 min, no maximum; 5 min also fits the
        # Consumption and Premium limits. Far above the handler's 20 s budget.
        h, m, sec = (int(x) for x in host["functionTimeout"].split(":"))
        self.assertTrue(60 <= h * 3600 + m * 60 + sec <= 600, host["functionTimeout"])

    def test_every_api_version_has_its_source(self):
        # The template cites where each resource type's api-version was read.
        sources = " ".join(self.template["metadata"]["sources"])
        for _, r in arm_schemas.resources_of(self.template):
            namespace = r["type"].split("/")[0]
            self.assertTrue(re.search(re.escape(namespace) + r"/[^@ ]*@" + re.escape(r["apiVersion"]),
                                      sources), f"{r['type']}@{r['apiVersion']} has no source")

    def test_outputs(self):
        outputs = self.top.outputs
        for key in ("functionAppName", "appInsightsResourceId", "portalLiveMetrics", "portalLogs"):
            self.assertIn(key, outputs)
        self.assertTrue(outputs["appInsightsResourceId"].endswith(
            "/providers/Microsoft.Insights/components/" + outputs["functionAppName"]))
        self.assertTrue(outputs["portalLiveMetrics"].startswith("https://portal.azure.com/#@"))


if __name__ == "__main__":
    unittest.main()
