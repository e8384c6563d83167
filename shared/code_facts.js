// A `deno lint` plugin that reports facts about a workflow module, never judgements: the
// specifier of each static import and re-export, each `Deno.<name>` and `process.env` the code
// names, and each declaration of its own named Deno or process (which hides the global).
// shared/code_facts.py reads them (one JSON object per diagnostic's message) and
// shared/sandbox_rules.py decides what the sandbox refuses. Comments and strings are not code:
// only the syntax tree is read.

const GLOBAL_OBJECTS = new Set(["globalThis", "self", "window"]);
const WATCHED = new Set(["Deno", "process"]);

function same(a, b) {
  return a != null && b != null && a.range[0] === b.range[0] && a.range[1] === b.range[1];
}

// `name`, `globalThis.name`, `self.name`, `window.name`, `globalThis["name"]`.
function isGlobal(node, name) {
  if (node == null) return false;
  if (node.type === "Identifier") return node.name === name;
  return node.type === "MemberExpression" && node.object.type === "Identifier" &&
    GLOBAL_OBJECTS.has(node.object.name) && keyName(node.property, node.computed) === name;
}

// The name a member access or a pattern's key spells, when the code spells it out.
function keyName(key, computed) {
  if (!computed && key.type === "Identifier") return key.name;
  if (key.type === "Literal" && typeof key.value === "string") return key.value;
  return null;
}

// Does this identifier declare a binding (a variable, parameter, function, class, import)?
function declares(node) {
  const parent = node.parent;
  if (parent == null) return false;
  switch (parent.type) {
    case "VariableDeclarator":
    case "ClassDeclaration":
    case "ClassExpression":
      return same(parent.id, node);
    case "FunctionDeclaration":
    case "FunctionExpression":
    case "ArrowFunctionExpression":
      return same(parent.id, node) || parent.params.some((p) => same(p, node));
    case "CatchClause":
      return same(parent.param, node);
    case "ImportDefaultSpecifier":
    case "ImportNamespaceSpecifier":
    case "ImportSpecifier":
      // `import process from "node:process"` is the global process, locked the same way.
      return same(parent.local, node) && parent.parent?.source?.value !== "node:process";
    case "Property":
      return parent.parent?.type === "ObjectPattern" && same(parent.value, node);
    case "ArrayPattern":
      return parent.elements.some((e) => same(e, node));
    case "RestElement":
      return same(parent.argument, node);
    case "AssignmentPattern":
      return same(parent.left, node);
    default:
      return false;
  }
}

export default {
  name: "roomhooks",
  rules: {
    facts: {
      create(context) {
        const report = (node, fact) => context.report({ node, message: JSON.stringify(fact) });
        const source = (node) => {
          if (node.source?.type === "Literal") {
            report(node.source, { kind: "import", name: String(node.source.value) });
          }
        };
        const member = (node, object, name) => {
          if (name === null) return;
          if (isGlobal(object, "Deno")) report(node, { kind: "deno", name });
          if (isGlobal(object, "process") && name === "env") report(node, { kind: "process.env" });
        };
        return {
          ImportDeclaration: source,
          ExportAllDeclaration: source,
          ExportNamedDeclaration: source,
          TSImportEqualsDeclaration(node) {
            const reference = node.moduleReference;
            if (reference?.type === "TSExternalModuleReference") {
              report(reference.expression, { kind: "import", name: String(reference.expression.value) });
            }
          },
          MemberExpression(node) {
            member(node, node.object, keyName(node.property, node.computed));
          },
          // const { env } = Deno;
          VariableDeclarator(node) {
            if (node.id.type !== "ObjectPattern") return;
            for (const property of node.id.properties) {
              if (property.type === "Property") {
                member(property.key, node.init, keyName(property.key, property.computed));
              }
            }
          },
          Identifier(node) {
            if (WATCHED.has(node.name) && declares(node)) {
              report(node, { kind: "declares", name: node.name });
            }
          },
        };
      },
    },
  },
};
