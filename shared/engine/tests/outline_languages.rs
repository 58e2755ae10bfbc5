//! Outlines of small real snippets in each language with a grammar, and the line-window fallback.

use prfix_engine::outline::{Language, SymbolKind, WINDOW_LINES, line_windows, outline};

/// `(kind, qualified name, start, end)` of every symbol, for compact assertions.
fn summary(path: &str, text: &str) -> Vec<(SymbolKind, String, usize, usize)> {
    outline(path, text).symbols.iter().map(|s| (s.kind, s.qualified_name(), s.start_line, s.end_line)).collect()
}

#[test]
fn rust_structs_impls_traits_and_methods_are_outlined_with_their_lines() {
    let text = "use std::fmt;\n\npub struct Cart {\n    items: Vec<u32>,\n}\n\nimpl Cart {\n    pub fn total(&self) -> u32 {\n        self.items.iter().sum()\n    }\n}\n\nimpl fmt::Display for Cart {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        write!(f, \"{}\", self.total())\n    }\n}\n\npub trait Priced {\n    fn price(&self) -> u32;\n}\n\nfn helper() {}\n";
    use SymbolKind::*;
    assert_eq!(
        summary("src/cart.rs", text),
        vec![
            (Struct, "Cart".into(), 3, 5),
            (Impl, "Cart".into(), 7, 11),
            (Method, "Cart.total".into(), 8, 10),
            (Impl, "fmt::Display for Cart".into(), 13, 17),
            (Method, "fmt::Display for Cart.fmt".into(), 14, 16),
            (Trait, "Priced".into(), 19, 21),
            (Method, "Priced.price".into(), 20, 20),
            (Function, "helper".into(), 23, 23),
        ]
    );
}

#[test]
fn python_classes_methods_and_decorated_functions_are_outlined() {
    let text = "import functools\n\n\nclass Cart:\n    def __init__(self):\n        self.items = []\n\n    @property\n    def total(self):\n        return sum(self.items)\n\n\n@functools.cache\ndef tax(rate):\n    def apply(x):\n        return x * rate\n    return apply\n";
    use SymbolKind::*;
    assert_eq!(
        summary("shop/cart.py", text),
        vec![
            (Class, "Cart".into(), 4, 10),
            (Method, "Cart.__init__".into(), 5, 6),
            (Method, "Cart.total".into(), 8, 10),
            (Function, "tax".into(), 13, 17),
            (Function, "tax.apply".into(), 15, 16),
        ]
    );
}

#[test]
fn javascript_functions_classes_methods_and_arrow_functions_are_outlined() {
    let text = "export function add(a, b) {\n  return a + b;\n}\n\nexport class Counter {\n  constructor() {\n    this.n = 0;\n  }\n  increment() {\n    this.n += 1;\n  }\n}\n\nconst double = (x) => x * 2;\n";
    use SymbolKind::*;
    assert_eq!(
        summary("web/util.js", text),
        vec![
            (Function, "add".into(), 1, 3),
            (Class, "Counter".into(), 5, 12),
            (Method, "Counter.constructor".into(), 6, 8),
            (Method, "Counter.increment".into(), 9, 11),
            (Function, "double".into(), 14, 14),
        ]
    );
}

#[test]
fn typescript_interfaces_types_enums_and_classes_are_outlined() {
    let text = "export interface Item {\n  price: number;\n}\n\nexport type Id = string;\n\nenum Color {\n  Red,\n  Blue,\n}\n\nexport class Cart {\n  items: Item[] = [];\n  total(): number {\n    return this.items.reduce((s, i) => s + i.price, 0);\n  }\n}\n";
    use SymbolKind::*;
    assert_eq!(
        summary("src/cart.ts", text),
        vec![
            (Interface, "Item".into(), 1, 3),
            (Type, "Id".into(), 5, 5),
            (Enum, "Color".into(), 7, 10),
            (Class, "Cart".into(), 12, 17),
            (Method, "Cart.total".into(), 14, 16),
        ]
    );
}

#[test]
fn tsx_components_are_outlined_with_the_tsx_grammar() {
    let text = "import React from 'react';\n\nexport function Badge({ label }: { label: string }) {\n  return <span className=\"badge\">{label}</span>;\n}\n\nexport const Card = ({ title }: { title: string }) => (\n  <div>\n    <Badge label={title} />\n  </div>\n);\n";
    let o = outline("ui/Card.tsx", text);
    assert_eq!(o.language, Some(Language::Tsx));
    let names: Vec<(String, usize, usize)> =
        o.symbols.iter().map(|s| (s.qualified_name(), s.start_line, s.end_line)).collect();
    assert_eq!(names, vec![("Badge".into(), 3, 5), ("Card".into(), 7, 11)]);
}

#[test]
fn go_functions_methods_with_receivers_and_types_are_outlined() {
    let text = "package cart\n\ntype Cart struct {\n\titems []int\n}\n\ntype Pricer interface {\n\tPrice() int\n}\n\nfunc (c *Cart) Total() int {\n\tt := 0\n\tfor _, x := range c.items {\n\t\tt += x\n\t}\n\treturn t\n}\n\nfunc New() *Cart {\n\treturn &Cart{}\n}\n";
    use SymbolKind::*;
    assert_eq!(
        summary("cart/cart.go", text),
        vec![
            (Struct, "Cart".into(), 3, 5),
            (Interface, "Pricer".into(), 7, 9),
            (Method, "Cart.Total".into(), 11, 17),
            (Function, "New".into(), 19, 21),
        ]
    );
}

#[test]
fn java_classes_constructors_methods_and_nested_types_are_outlined() {
    let text = "package shop;\n\npublic class Cart {\n    private int total;\n\n    public Cart() {\n        total = 0;\n    }\n\n    public int total() {\n        return total;\n    }\n\n    enum Kind { A, B }\n}\n";
    use SymbolKind::*;
    assert_eq!(
        summary("src/main/java/shop/Cart.java", text),
        vec![
            (Class, "Cart".into(), 3, 15),
            (Method, "Cart.Cart".into(), 6, 8),
            (Method, "Cart.total".into(), 10, 12),
            (Enum, "Cart.Kind".into(), 14, 14),
        ]
    );
}

#[test]
fn other_files_and_files_without_symbols_are_cut_into_line_windows() {
    let text: String = (1..=130).map(|i| format!("key{i}: value\n")).collect();
    let o = outline("deploy/values.yaml", &text);
    assert_eq!(o.language, None);
    let ranges: Vec<(usize, usize)> = o.symbols.iter().map(|s| (s.start_line, s.end_line)).collect();
    assert_eq!(ranges, vec![(1, WINDOW_LINES), (WINDOW_LINES + 1, 2 * WINDOW_LINES), (2 * WINDOW_LINES + 1, 130)]);
    assert!(o.symbols.iter().all(|s| s.kind == SymbolKind::Lines));
    let script = outline("run.py", "import sys\nprint(sys.argv)\n");
    assert_eq!(script.symbols.len(), 1, "a Python script without definitions still has a region");
    assert!(line_windows("", 10).is_empty());
}

#[test]
fn a_file_with_syntax_errors_still_has_an_outline() {
    let text =
        "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nclass Later:\n    def m(self):\n        return 2\n";
    let names: Vec<String> = outline("a.py", text).symbols.iter().map(|s| s.qualified_name()).collect();
    assert!(names.contains(&"ok".to_string()) && names.contains(&"Later.m".to_string()), "{names:?}");
}

#[test]
fn symbols_are_found_by_qualified_name_or_by_their_last_part() {
    let text = "class A:\n    def run(self):\n        pass\n\nclass B:\n    def run(self):\n        pass\n";
    let o = outline("x.py", text);
    assert_eq!(o.find("B.run").len(), 1);
    assert_eq!(o.find("B.run")[0].start_line, 6);
    assert_eq!(o.find("run").len(), 2, "a bare name shared by two methods is ambiguous");
    assert!(o.find("missing").is_empty());
    assert!(o.render().contains("  method A.run (lines 2-3)\n"), "{}", o.render());
}
