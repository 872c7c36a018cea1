"""The ARM template expression language, enough to check a template offline.

An ARM template string that starts with "[" and ends with "]" is an expression
("[[" at the start escapes a literal "["). The grammar, from Microsoft Learn
"Template syntax and expressions" (azure-resource-manager/templates/
template-expressions):

    expression := primary accessor*
    primary    := string | integer | call
    call       := name "(" [expression ("," expression)*] ")"
    accessor   := "." name | "[" expression "]"
    string     := "'" ( any character but "'" | "''" )* "'"

Function names are case-insensitive. `parse` builds a tree of tuples:

    ("str", text) ("int", n) ("call", name, [args]) ("prop", obj, name)
    ("index", obj, expr)

and `Evaluator` runs one with stand-in values: parameters given by the caller,
ids computed the way Azure Resource Manager writes them, reference() answering
an opaque stand-in, so every parameters()/variables() name and every resource
an id names can be checked without Azure.
"""

import hashlib
import re
import uuid

# Every function of Microsoft Learn "ARM template functions"
# (azure-resource-manager/templates/template-functions), lower-cased.
KNOWN_FUNCTIONS = frozenset("""
array concat contains createarray empty first filter flatten indexfromend indexof
intersection items join last lastindexof length map mapvalues max min range reduce
shallowmerge skip sort take toobject trygetvalue tryget tryindexfromend union groupby
lambda lambdavariables
parsecidr cidrsubnet cidrhost
coalesce equals greater greaterorequals less lessorequals
datetimeadd datetimefromepoch datetimetoepoch utcnow
deployer deployment environment parameters variables
and bool false if not or true
add copyindex div float int mod mul sub
createobject json null objectkeys
extensionresourceid listaccountsas listkeys listsecrets listservicesas managementgroup
managementgroupresourceid pickzones providers reference references resourcegroup
resourceid subscription subscriptionresourceid tenant tenantresourceid
base64 base64tojson base64tostring datauri datauritostring endswith format guid
newguid padleft replace split startswith string substring tolower toupper trim
uniquestring uri uricomponent uricomponenttostring
""".split())


class ExpressionError(ValueError):
    pass


def is_expression(value):
    return (isinstance(value, str) and value.startswith("[") and value.endswith("]")
            and not value.startswith("[["))


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<int>-?\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),.\[\]])
""", re.VERBOSE)


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"unexpected {text[pos:pos + 10]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "int":
            value = int(value)
        out.append((kind, value))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, text):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self, kind, value=None):
        tok = self.toks[self.i]
        if tok[0] != kind or (value is not None and tok[1] != value):
            raise ExpressionError(f"expected {value or kind}, found {tok[1]!r}")
        self.i += 1
        return tok[1]

    def expression(self):
        kind, value = self.peek()
        if kind == "str":
            self.i += 1
            node = ("str", value)
        elif kind == "int":
            self.i += 1
            node = ("int", value)
        elif kind == "name":
            self.i += 1
            self.take("punct", "(")
            args = []
            if self.peek() != ("punct", ")"):
                args.append(self.expression())
                while self.peek() == ("punct", ","):
                    self.i += 1
                    args.append(self.expression())
            self.take("punct", ")")
            node = ("call", value, args)
        else:
            raise ExpressionError(f"expected a value, found {value!r}")
        while True:
            tok = self.peek()
            if tok == ("punct", "."):
                self.i += 1
                node = ("prop", node, self.take("name"))
            elif tok == ("punct", "["):
                self.i += 1
                index = self.expression()
                self.take("punct", "]")
                node = ("index", node, index)
            else:
                return node


def parse(value):
    """The tree of an expression string "[...]"; ExpressionError if malformed."""
    if not is_expression(value):
        raise ExpressionError(f"not an expression: {value!r}")
    parser = _Parser(value[1:-1])
    node = parser.expression()
    parser.take("end")
    return node


def calls(node):
    """Every ("call", name, args) node of a tree, outermost first."""
    if node[0] == "call":
        yield node
        for arg in node[2]:
            yield from calls(arg)
    elif node[0] in ("prop", "index"):
        yield from calls(node[1])
        if node[0] == "index":
            yield from calls(node[2])


class Opaque:
    """What reference(), list*() and other run-time values evaluate to: any
    property or index of it is another Opaque, and it prints as a marker."""

    def __init__(self, what):
        self.what = what

    def __str__(self):
        return f"<{self.what}>"


class Evaluator:
    """Evaluates expressions of one template scope.

    scope: dict with subscriptionId, resourceGroup, location, tenantId.
    parameters: name -> value (defaults already applied by the caller).
    variables: the template's raw variables (evaluated on first use).
    Raises ExpressionError for an unknown parameter or variable, a function this
    evaluator does not implement, or a malformed id."""

    def __init__(self, scope, parameters, variables):
        self.scope = scope
        self.parameters = parameters
        self.raw_variables = variables
        self.variables = {}
        self.references = []  # (function, evaluated first argument)

    def value(self, value):
        """A JSON value with every expression in it evaluated."""
        if is_expression(value):
            return self.eval(parse(value))
        if isinstance(value, str) and value.startswith("[["):
            return value[1:]
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        return value

    def eval(self, node):
        kind = node[0]
        if kind == "str" or kind == "int":
            return node[1]
        if kind == "prop":
            obj = self.eval(node[1])
            if isinstance(obj, Opaque):
                return Opaque(f"{obj.what}.{node[2]}")
            if not isinstance(obj, dict):
                raise ExpressionError(f".{node[2]} of a {type(obj).__name__}")
            for key in obj:  # property names are case-insensitive
                if key.lower() == node[2].lower():
                    return obj[key]
            raise ExpressionError(f"no property {node[2]!r} in {sorted(obj)}")
        if kind == "index":
            obj, index = self.eval(node[1]), self.eval(node[2])
            if isinstance(obj, Opaque):
                return Opaque(f"{obj.what}[{index}]")
            try:
                return obj[index]
            except (IndexError, KeyError, TypeError) as e:
                raise ExpressionError(f"[{index!r}] of {obj!r}: {e}") from None
        name = node[1].lower()
        if name not in KNOWN_FUNCTIONS:
            raise ExpressionError(f"unknown function {node[1]}()")
        args = [self.eval(a) for a in node[2]]
        fn = getattr(self, "fn_" + name, None)
        if fn is None:
            raise ExpressionError(f"{node[1]}() is not implemented by the checker")
        return fn(*args)

    # --- deployment -----------------------------------------------------------
    def fn_parameters(self, name):
        if name not in self.parameters:
            raise ExpressionError(f"parameters('{name}'): no such parameter")
        return self.parameters[name]

    def fn_variables(self, name):
        if name not in self.raw_variables:
            raise ExpressionError(f"variables('{name}'): no such variable")
        if name not in self.variables:
            self.variables[name] = self.value(self.raw_variables[name])
        return self.variables[name]

    def fn_resourcegroup(self):
        s = self.scope
        return {"id": f"/subscriptions/{s['subscriptionId']}/resourceGroups/{s['resourceGroup']}",
                "name": s["resourceGroup"], "location": s["location"]}

    def fn_subscription(self):
        s = self.scope
        return {"id": f"/subscriptions/{s['subscriptionId']}",
                "subscriptionId": s["subscriptionId"], "tenantId": s["tenantId"]}

    def fn_environment(self):
        # The public cloud's values, as environment() returns them there.
        return {"name": "AzureCloud", "portal": "https://portal.azure.com",
                "resourceManager": "https://management.azure.com/",
                "suffixes": {"storage": "core.windows.net"}}

    # --- resource ids -------------------------------------------------------------
    @staticmethod
    def _typed_path(rtype, names):
        parts = rtype.split("/")
        if len(parts) < 2 or "." not in parts[0]:
            raise ExpressionError(f"{rtype!r} is not a resource type")
        if len(names) != len(parts) - 1:
            raise ExpressionError(f"{rtype} takes {len(parts) - 1} name segment(s), "
                                  f"given {len(names)}")
        path = f"providers/{parts[0]}"
        for t, n in zip(parts[1:], names):
            if not isinstance(n, str) or not n or "/" in n:
                raise ExpressionError(f"bad name segment {n!r} for {rtype}")
            path += f"/{t}/{n}"
        return path

    def fn_resourceid(self, *args):
        args = list(args)
        type_at = next((i for i, a in enumerate(args)
                        if isinstance(a, str) and re.match(r"^[A-Za-z]+\.[A-Za-z.]+/", a)),
                       None)
        if type_at is None or type_at > 2:
            raise ExpressionError(f"resourceId{tuple(args)}: no resource type")
        sub, rg = self.scope["subscriptionId"], self.scope["resourceGroup"]
        if type_at == 2:
            sub, rg = args[0], args[1]
        elif type_at == 1:
            rg = args[0]
        return f"/subscriptions/{sub}/resourceGroups/{rg}/" + self._typed_path(
            args[type_at], args[type_at + 1:])

    def fn_subscriptionresourceid(self, *args):
        args = list(args)
        sub = self.scope["subscriptionId"]
        if args and not re.match(r"^[A-Za-z]+\.[A-Za-z.]+/", str(args[0])):
            sub = args.pop(0)
        return f"/subscriptions/{sub}/" + self._typed_path(args[0], args[1:])

    def fn_extensionresourceid(self, scope_id, rtype, *names):
        return f"{scope_id}/" + self._typed_path(rtype, list(names))

    def fn_reference(self, target, *_):
        self.references.append(("reference", target))
        return Opaque(f"reference({target})")

    def fn_listkeys(self, target, *_):
        self.references.append(("listKeys", target))
        return Opaque(f"listKeys({target})")

    # --- strings, arrays, logic ------------------------------------------------------
    def fn_format(self, fmt, *args):
        def sub(m):
            i = int(m.group(1))
            if i >= len(args):
                raise ExpressionError(f"format({fmt!r}): no argument {i}")
            return self._text(args[i])
        return re.sub(r"\{(\d+)\}", sub, fmt)

    @staticmethod
    def _text(v):
        if isinstance(v, bool):
            return "True" if v else "False"  # as ARM's format()/string() write them
        if isinstance(v, (dict, list)):
            import json
            return json.dumps(v, separators=(",", ":"))
        return str(v)

    def fn_concat(self, *args):
        if args and all(isinstance(a, list) for a in args):
            return [x for a in args for x in a]
        return "".join(self._text(a) for a in args)

    def fn_string(self, v):
        return self._text(v)

    def fn_split(self, text, sep):
        if isinstance(text, Opaque):
            return Opaque(f"split({text.what})")
        return text.split(sep)

    def fn_last(self, v):
        return v[-1]

    def fn_first(self, v):
        return v[0]

    def fn_take(self, v, n):
        return v[:n]

    def fn_tolower(self, v):
        return v.lower()

    def fn_toupper(self, v):
        return v.upper()

    def fn_empty(self, v):
        return v is None or (not isinstance(v, Opaque) and len(v) == 0)

    def fn_not(self, v):
        return not v

    def fn_or(self, *v):
        return any(v)

    def fn_and(self, *v):
        return all(v)

    def fn_equals(self, a, b):
        return a == b

    def fn_if(self, cond, a, b):
        return a if cond else b

    def fn_true(self):
        return True

    def fn_false(self):
        return False

    def fn_uniquestring(self, *args):
        digest = hashlib.sha256("|".join(map(self._text, args)).encode()).hexdigest()
        return "".join(c for c in digest if c.isalnum())[:13]

    def fn_guid(self, *args):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(self._text, args))))
