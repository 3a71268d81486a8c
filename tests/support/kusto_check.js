// Parses and analyzes Kusto queries with Microsoft's Kusto language service
// (@kusto/language-service-next, the parser of the Azure Data Explorer and Log Analytics
// editors). Reads {"tables": {name: "(col:type, ...)"}, "queries": [text, ...]} on stdin and
// prints, for each query, the list of its diagnostics as [severity, message, start].
"use strict";
// A Bridge.NET bundle: the Bridge runtime loads first and defines the global Kusto namespace.
require("@kusto/language-service-next/bridge.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.js");

const K = global.Kusto.Language;
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tables = Object.entries(input.tables).map(
  ([name, schema]) => new K.Symbols.TableSymbol.$ctor7(name, schema, null));
const database = new K.Symbols.DatabaseSymbol.$ctor1("appinsights", tables, false);
const globals = K.GlobalState.Default.WithDatabase(database);

const results = input.queries.map((text) => {
  const diagnostics = K.KustoCode.ParseAndAnalyze(text, globals).GetDiagnostics();
  const found = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    found.push([d.Severity, d.Message, d.Start]);
  }
  return found;
});
process.stdout.write(JSON.stringify(results));
