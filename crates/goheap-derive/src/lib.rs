//! `#[derive(Trace)]` for goheap's garbage collector, re-exported as `goheap::gc::Trace` (the
//! derive and the trait share the name, as serde's do).
//!
//! ```ignore
//! use goheap::gc::{Gc, GcCell, Trace};
//!
//! #[derive(Trace)]
//! struct Node<'gc> {
//!     value: u32,
//!     next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
//!     #[trace(skip)]
//!     name: String,
//! }
//!
//! #[derive(Trace)]
//! #[trace(static)]
//! struct Handle(std::fs::File); // no Gc inside, may implement Drop
//! ```
//!
//! The collector is precise: an object stays alive only if it is reachable through edges that
//! some `Trace::trace` reports. A derived implementation is safe code's way of writing that
//! `unsafe` trait, so everything it emits must be sound for *every* type it accepts; each rule
//! below closes one way a safe program could otherwise reach a freed object. The generated
//! code names goheap by absolute paths (`::goheap::gc::...`), so the deriving crate must depend
//! on goheap under that name.
//!
//! # What is generated
//!
//! For a struct (named, tuple or unit) or an enum:
//!
//! * `unsafe impl Trace for Ty<..> where <each type parameter>: Trace, <the type's own where
//!   clauses>`, with
//!   * `const NEEDS_TRACE: bool = false || <F as Trace>::NEEDS_TRACE || ...` over the types
//!     `F` of the traced fields (every variant's, for an enum), and
//!   * `fn trace(&self, t)` calling `Trace::trace(field, t)` on every traced field (in a
//!     `match` on the variant, for an enum).
//!
//!   **Why:** an edge that `trace` does not report is an object the collector may free while
//!   it is still reachable. So every field is traced unless the user says otherwise, and the
//!   call needs `F: Trace`: a field whose type the collector cannot trace does not compile.
//!   That includes `Cell<Gc<..>>`, `RefCell<Gc<..>>`, `Mutex<Gc<..>>`, `Rc<..Gc..>`: goheap
//!   implements `Trace` for the std cells and shared pointers only around `'static` data, and
//!   a `Gc` is never `'static` (it carries its session's brand), so a traced pointer cannot
//!   hide behind a store the write barrier does not see. Use goheap's `GcCell`/`GcRefCell`.
//!
//!   `NEEDS_TRACE = false` puts the type's objects in *noscan* spans that marking never reads,
//!   so it must be true whenever a value could hold a `Gc`; it is computed from the very same
//!   fields `trace` visits. One exception: a field whose type names the type itself (`Self` or
//!   its own name, e.g. `children: Vec<Tree<'gc>>`) counts as `true` without asking its type:
//!   evaluating `<Vec<Tree> as Trace>::NEEDS_TRACE` inside `Tree::NEEDS_TRACE` is a cycle that
//!   does not compile. Over-approximating is always sound (the object is merely scanned). A
//!   recursive `'static` type that holds no `Gc` gets `false` with `#[trace(static)]`.
//!
//! * `impl DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup for Ty<..> {}`
//!   (`::goheap::gc::__private`). goheap implements that trait for every `T: Drop`, so a
//!   user `impl Drop for Ty` is a coherence error, E0119, whose text names the trait and so
//!   says what to do: "conflicting implementations of trait
//!   `DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup`" (stable Rust cannot
//!   customise E0119's message).
//!
//!   **Why:** the collector frees a whole unreachable cycle at once, in no particular order.
//!   A destructor of one object of the cycle could follow a traced `Gc` field to another one
//!   that is already freed: a use-after-free from safe code. (gc-arena uses the same trick.)
//!   Fields may still have destructors (a `String`, a `Vec<Gc<..>>`): std's never dereference
//!   a `Gc`, and a hand-written `Trace` type that has a destructor answers for it in its own
//!   `unsafe impl`. A type that needs a destructor and holds no `Gc` uses `#[trace(static)]`.
//!
//! * `unsafe impl<'__b, ..> Rebrand<'__b> for Ty<'gc, T, ..>` with
//!   `type Branded = Ty<'__b, <T as Rebrand<'__b>>::Branded, ..>` (plain `Ty` when the type
//!   has neither a lifetime nor a type parameter; const parameters pass through unchanged).
//!   The type's single lifetime parameter is taken as its session lifetime: it is replaced,
//!   and so is every type parameter, recursively. The impl carries the type's own bounds twice:
//!   as written, for `Ty<'gc, T>`, and with `'gc` and each `T` replaced, so that the branded
//!   type is well-formed too.
//!
//!   **Why:** `Rebrand` lets a `Root` (which outlives every session) name its object's type
//!   and give the object back at the next session's lifetime. Its contract is that `Branded`
//!   is `Self` with the session lifetime replaced and nothing else changed; replacing the one
//!   lifetime parameter everywhere, and each type parameter by its own `Branded`, is exactly
//!   that substitution.
//!
//!   No `Rebrand` impl is emitted (the type still gets `Trace`, it just cannot be rooted by a
//!   `Root`; write `Rebrand` by hand if it must be) for a type with two or more lifetime
//!   parameters (which one is the session's cannot be known), and for a type whose bounds
//!   cannot be rewritten mechanically: a bound that uses the shorthand `T::Assoc` (write
//!   `<T as Trait>::Assoc`, which is rewritten), `Self`, or a macro in type position.
//!
//! # Attributes
//!
//! * `#[trace(skip)]` on a field: the field is not traced and does not count towards
//!   `NEEDS_TRACE`. To keep that sound, `trace` calls
//!   `::goheap::gc::__private::assert_static(&field)`, which requires the field's type to be
//!   `'static`. A type that mentions the session lifetime (and so could hold a `Gc`) fails to
//!   compile; a skipped field of a generic type `T` needs a `T: 'static` bound on the type.
//!   **Why:** a `Gc` the collector does not see is a dangling pointer after the next
//!   collection.
//!
//! * `#[trace(static)]` on the type: the type is `'static`, holds no `Gc`, and may implement
//!   `Drop`. Generated: `Trace` with `NEEDS_TRACE = false` and an empty `trace`, and
//!   `Rebrand` with `type Branded = Self`, both `where Self: 'static`; no
//!   `DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup`.
//!   Fields are not looked at, so any field type is allowed (a union too).
//!   **Why:** `'static` is what proves that no `Gc` is inside (a `Gc` carries its session's
//!   non-`'static` brand), and with no `Gc` inside there is nothing to trace and nothing a
//!   destructor could find freed.
//!
//! # Rejected
//!
//! * A union (without `#[trace(static)]`): which field is live is not known, so it could not be
//!   traced.
//! * `#[repr(packed)]` (without `#[trace(static)]`): `trace` takes a reference to every
//!   field, and a packed field may be unaligned.
//! * Unknown or misplaced `#[trace(..)]` options.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    parse_macro_input, parse_quote, Data, DeriveInput, Error, Fields, GenericParam, Generics,
    Ident, Lifetime, Member, Result, TraitBoundModifier, Type, TypeParamBound, WhereClause,
    WherePredicate,
};

/// `#[derive(Trace)]`: implements `goheap::gc::Trace` (and `Rebrand`) for a struct or enum
/// by tracing every field. See the crate documentation for what it generates and why.
///
/// ```
/// use goheap::gc::{Gc, GcRefCell, Heap, Trace};
///
/// #[derive(Trace)]
/// enum Expr<'gc> {
///     Num(i64),
///     Add(Gc<'gc, Expr<'gc>>, Gc<'gc, Expr<'gc>>),
///     // Not traced: must be `'static` (it holds no `Gc`).
///     Note(#[trace(skip)] String),
/// }
///
/// // `'static` data, so it may implement `Drop`.
/// #[derive(Trace)]
/// #[trace(static)]
/// struct Log(Vec<String>);
/// impl Drop for Log {
///     fn drop(&mut self) {}
/// }
///
/// #[derive(Trace)]
/// struct Env<'gc> {
///     last: GcRefCell<Option<Gc<'gc, Expr<'gc>>>>,
///     log: Log,
/// }
///
/// fn eval(e: &Expr<'_>) -> i64 {
///     match e {
///         Expr::Num(n) => *n,
///         Expr::Add(a, b) => eval(a) + eval(b),
///         Expr::Note(_) => 0,
///     }
/// }
///
/// let heap = Heap::new();
/// let env = heap.mutator().enter(|cx| {
///     let two = cx.alloc(Expr::Num(2));
///     let sum = cx.alloc(Expr::Add(two, two));
///     let env = cx.alloc(Env { last: GcRefCell::new(Some(sum)), log: Log(Vec::new()) });
///     cx.root(env)
/// });
/// heap.collect();
/// let v = heap.mutator().enter(|cx| {
///     let last = *cx.get(&env).last.borrow();
///     eval(&last.unwrap())
/// });
/// assert_eq!(v, 4);
/// ```
#[proc_macro_derive(Trace, attributes(trace))]
pub fn derive_trace(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Accumulates several errors so that one compilation reports all of them.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Where a `#[trace(..)]` attribute sits: each place accepts different options.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Type,
    Variant,
    Field,
}

/// The options of every `#[trace(..)]` attribute in `attrs`: `(static, skip)`.
fn parse_attrs(attrs: &[syn::Attribute], place: Place, errors: &mut Errors) -> (bool, bool) {
    let (mut is_static, mut skip) = (false, false);
    for attr in attrs.iter().filter(|a| a.path().is_ident("trace")) {
        if place == Place::Variant {
            errors.push(Error::new_spanned(
                attr,
                "#[trace(..)] does not apply to an enum variant: put #[trace(skip)] on its \
                 fields, or #[trace(static)] on the enum",
            ));
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error(
                    "#[trace] options take no value: write #[trace(skip)] or #[trace(static)]",
                ));
            }
            if meta.path.is_ident("static") {
                if place != Place::Type {
                    return Err(meta.error(
                        "#[trace(static)] goes on the type, not on a field: to leave a \
                         'static field untraced, use #[trace(skip)]",
                    ));
                }
                is_static = true;
                Ok(())
            } else if meta.path.is_ident("skip") {
                if place != Place::Field {
                    return Err(meta.error(
                        "#[trace(skip)] goes on a field: for a 'static type that holds no Gc, \
                         use #[trace(static)] on the type",
                    ));
                }
                skip = true;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[trace] option: expected #[trace(skip)] on a field or \
                     #[trace(static)] on the type",
                ))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    (is_static, skip)
}

/// One field as the generated code sees it.
struct FieldInfo<'a> {
    member: Member,
    ty: &'a Type,
    skip: bool,
}

/// One variant (or the struct itself: `variant` is None).
struct VariantInfo<'a> {
    variant: Option<&'a Ident>,
    fields: Vec<FieldInfo<'a>>,
}

fn fields_of<'a>(fields: &'a Fields, errors: &mut Errors) -> Vec<FieldInfo<'a>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (_, skip) = parse_attrs(&f.attrs, Place::Field, errors);
            let member = match &f.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index {
                    index: i as u32,
                    span: f.ty.span(),
                }),
            };
            FieldInfo {
                member,
                ty: &f.ty,
                skip,
            }
        })
        .collect()
}

fn expand(input: &DeriveInput) -> Result<TokenStream> {
    let mut errors = Errors::default();
    let (is_static, _) = parse_attrs(&input.attrs, Place::Type, &mut errors);

    if is_static {
        // Fields are not traced at all, but misplaced options on them are still mistakes.
        let all_fields: Vec<&syn::Field> = match &input.data {
            Data::Struct(s) => s.fields.iter().collect(),
            Data::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
            Data::Union(u) => u.fields.named.iter().collect(),
        };
        for f in all_fields {
            let (_, skip) = parse_attrs(&f.attrs, Place::Field, &mut errors);
            if skip {
                errors.push(Error::new_spanned(
                    f.attrs.iter().find(|a| a.path().is_ident("trace")),
                    "#[trace(skip)] is redundant in a #[trace(static)] type, which traces no \
                     field: remove it",
                ));
            }
        }
        if let Data::Enum(e) = &input.data {
            for v in &e.variants {
                parse_attrs(&v.attrs, Place::Variant, &mut errors);
            }
        }
        errors.finish()?;
        return Ok(expand_static(input));
    }

    if let Some(repr) = packed_repr(input) {
        errors.push(Error::new_spanned(
            repr,
            "#[derive(Trace)] does not support #[repr(packed)]: trace takes a reference to \
             every field, and a packed field may be unaligned. Remove `packed`, or use \
             #[trace(static)] if the type is 'static and holds no Gc",
        ));
    }

    let variants: Vec<VariantInfo> = match &input.data {
        Data::Struct(s) => vec![VariantInfo {
            variant: None,
            fields: fields_of(&s.fields, &mut errors),
        }],
        Data::Enum(e) => e
            .variants
            .iter()
            .map(|v| {
                parse_attrs(&v.attrs, Place::Variant, &mut errors);
                VariantInfo {
                    variant: Some(&v.ident),
                    fields: fields_of(&v.fields, &mut errors),
                }
            })
            .collect(),
        Data::Union(u) => {
            errors.push(Error::new_spanned(
                u.union_token,
                "#[derive(Trace)] cannot be used on a union: which field is live is not \
                 known, so it could not be traced. Use an enum, or #[trace(static)] if the \
                 union is 'static and holds no Gc",
            ));
            Vec::new()
        }
    };
    errors.finish()?;

    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    // `Trace`: every type parameter must be traceable, plus the type's own where clauses.
    let mut trace_where = where_clause.cloned().unwrap_or_else(empty_where);
    for tp in input.generics.type_params() {
        let ident = &tp.ident;
        trace_where
            .predicates
            .push(parse_quote!(#ident: ::goheap::gc::Trace));
    }

    let mut needs_trace = Vec::new();
    let mut arms = Vec::new();
    for v in &variants {
        let path = match v.variant {
            Some(variant) => quote!(Self::#variant),
            None => quote!(Self),
        };
        let mut pattern = Vec::new();
        let mut body = Vec::new();
        for (i, f) in v.fields.iter().enumerate() {
            let binding = format_ident!("__goheap_field{}", i);
            let member = &f.member;
            pattern.push(quote!(#member: #binding));
            let span = f.ty.span();
            if f.skip {
                body.push(quote_spanned! {span=>
                    ::goheap::gc::__private::assert_static(#binding);
                });
            } else {
                let ty = f.ty;
                body.push(quote_spanned! {span=>
                    ::goheap::gc::Trace::trace(#binding, __goheap_tracer);
                });
                needs_trace.push(if mentions_self(ty.to_token_stream(), name) {
                    quote_spanned!(span=> true)
                } else {
                    quote_spanned!(span=> <#ty as ::goheap::gc::Trace>::NEEDS_TRACE)
                });
            }
        }
        arms.push(quote! {
            #path { #(#pattern),* } => { #(#body)* }
        });
    }
    let trace_body = if matches!(input.data, Data::Enum(_)) && arms.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#arms)* })
    };

    let rebrand = rebrand_impl(input);

    Ok(quote! {
        // SAFETY: `trace` visits every field that is not `#[trace(skip)]`, skipped fields are
        // `'static` (checked by `assert_static`) so hold no `Gc`, and `NEEDS_TRACE` is true
        // if any traced field's type may hold one.
        #[automatically_derived]
        unsafe impl #impl_generics ::goheap::gc::Trace for #name #ty_generics #trace_where {
            const NEEDS_TRACE: bool = false #(|| #needs_trace)*;
            // Inlined into the type's span-scanning loop (the marker's hot loop).
            #[inline(always)]
            #[allow(unused_variables)]
            fn trace(&self, __goheap_tracer: &mut ::goheap::gc::Tracer) {
                #trace_body
            }
        }

        // A user `impl Drop` for this type conflicts with goheap's
        // `impl<T: Drop> DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup for T`: a
        // destructor could see a freed object.
        #[automatically_derived]
        impl #impl_generics ::goheap::gc::__private::DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup
            for #name #ty_generics #where_clause {}

        #rebrand
    })
}

/// `#[trace(static)]`: no field is traced, the type must be `'static` and may implement Drop.
fn expand_static(input: &DeriveInput) -> TokenStream {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_static = where_clause.cloned().unwrap_or_else(empty_where);
    where_static.predicates.push(parse_quote!(Self: 'static));

    let b = branded_lifetime();
    let mut rebrand_generics = input.generics.clone();
    strip_defaults(&mut rebrand_generics);
    rebrand_generics.params.insert(
        0,
        GenericParam::Lifetime(syn::LifetimeParam::new(b.clone())),
    );
    let (rebrand_impl_generics, _, _) = rebrand_generics.split_for_impl();

    quote! {
        // SAFETY: `Self: 'static`, so no value holds a `Gc` (whose brand is never 'static):
        // there is nothing to trace.
        #[automatically_derived]
        unsafe impl #impl_generics ::goheap::gc::Trace for #name #ty_generics #where_static {
            const NEEDS_TRACE: bool = false;
            #[inline(always)]
            fn trace(&self, _: &mut ::goheap::gc::Tracer) {}
        }

        // SAFETY: a 'static type has no session lifetime to replace.
        #[automatically_derived]
        unsafe impl #rebrand_impl_generics ::goheap::gc::Rebrand<#b>
            for #name #ty_generics #where_static
        {
            type Branded = Self;
        }
    }
}

/// The `#[repr(..)]` attribute that makes the type packed, if any.
fn packed_repr(input: &DeriveInput) -> Option<&syn::Attribute> {
    input.attrs.iter().find(|attr| {
        if !attr.path().is_ident("repr") {
            return false;
        }
        let mut packed = false;
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("packed") {
                packed = true;
            }
            // Skip `align(4)`, `packed(2)` and the like.
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: TokenStream = content.parse()?;
            }
            Ok(())
        });
        packed
    })
}

/// Whether `tokens` name `Self` or the type `name` itself (at any depth).
fn mentions_self(tokens: TokenStream, name: &Ident) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == *name || i == "Self",
        TokenTree::Group(g) => mentions_self(g.stream(), name),
        _ => false,
    })
}

fn empty_where() -> WhereClause {
    WhereClause {
        where_token: Default::default(),
        predicates: Default::default(),
    }
}

/// The lifetime a `Rebrand` impl brands to; the odd name keeps clear of the user's.
fn branded_lifetime() -> Lifetime {
    Lifetime::new("'__goheap_branded", Span::call_site())
}

/// Impl generics may not have defaults (`struct S<T = u32>`).
fn strip_defaults(generics: &mut Generics) {
    for param in &mut generics.params {
        match param {
            GenericParam::Type(t) => {
                t.eq_token = None;
                t.default = None;
            }
            GenericParam::Const(c) => {
                c.eq_token = None;
                c.default = None;
            }
            GenericParam::Lifetime(_) => {}
        }
    }
}

/// Rewrites bounds written for `Ty<'gc, T>` into bounds for its branded twin: `'gc` becomes
/// the branded lifetime and each type parameter `T` becomes `<T as Rebrand<'b>>::Branded`.
/// Sets `unsupported` on what it cannot rewrite.
struct Brander<'a> {
    lifetime: Option<&'a Ident>,
    type_params: Vec<Ident>,
    branded: Lifetime,
    unsupported: bool,
}

impl Brander<'_> {
    fn is_param(&self, ident: &Ident) -> bool {
        self.type_params.iter().any(|p| p == ident)
    }
}

impl VisitMut for Brander<'_> {
    fn visit_lifetime_mut(&mut self, lt: &mut Lifetime) {
        if Some(&lt.ident) == self.lifetime {
            *lt = self.branded.clone();
        }
    }

    fn visit_type_mut(&mut self, ty: &mut Type) {
        match ty {
            Type::Path(p) if p.qself.is_none() && p.path.leading_colon.is_none() => {
                let first = &p.path.segments[0];
                if p.path.segments.len() == 1
                    && first.arguments.is_none()
                    && self.is_param(&first.ident)
                {
                    let ident = &first.ident;
                    let b = &self.branded;
                    *ty = parse_quote!(<#ident as ::goheap::gc::Rebrand<#b>>::Branded);
                    return;
                }
                if self.is_param(&first.ident) || first.ident == "Self" {
                    // `T::Assoc` or `Self`: no mechanical rewrite.
                    self.unsupported = true;
                }
            }
            Type::Macro(_) => self.unsupported = true,
            _ => {}
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }

    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        if path.leading_colon.is_none() && path.segments[0].ident == "Self" {
            self.unsupported = true;
        }
        syn::visit_mut::visit_path_mut(self, path);
    }
}

/// `Rebrand` for a traced type, or nothing when the type cannot be rebranded mechanically
/// (see the crate documentation).
fn rebrand_impl(input: &DeriveInput) -> TokenStream {
    let generics = &input.generics;
    let lifetimes: Vec<&syn::LifetimeParam> = generics.lifetimes().collect();
    if lifetimes.len() > 1 {
        return TokenStream::new();
    }
    let b = branded_lifetime();
    let mut brander = Brander {
        lifetime: lifetimes.first().map(|l| &l.lifetime.ident),
        type_params: generics.type_params().map(|t| t.ident.clone()).collect(),
        branded: b.clone(),
        unsupported: false,
    };

    // Every bound of the type, as where predicates, so that it can be rewritten.
    let mut predicates: Vec<WherePredicate> = Vec::new();
    let mut maybe_unsized: Vec<Ident> = Vec::new();
    for param in &generics.params {
        match param {
            GenericParam::Lifetime(l) if !l.bounds.is_empty() => {
                let (lt, bounds) = (&l.lifetime, &l.bounds);
                predicates.push(parse_quote!(#lt: #bounds));
            }
            GenericParam::Type(t) => {
                let ident = &t.ident;
                let bounds = &t.bounds;
                if !bounds.is_empty() {
                    predicates.push(parse_quote!(#ident: #bounds));
                }
            }
            _ => {}
        }
    }
    if let Some(w) = &generics.where_clause {
        predicates.extend(w.predicates.iter().cloned());
    }
    let mut branded_predicates = Vec::new();
    for pred in &predicates {
        let mut pred = pred.clone();
        if let WherePredicate::Type(t) = &mut pred {
            // `?Sized` is only allowed on a parameter's own declaration: drop it from the
            // rewritten bound, and do not require the branded parameter to be Sized.
            let before = t.bounds.len();
            t.bounds = std::mem::take(&mut t.bounds)
                .into_iter()
                .filter(|b| {
                    !matches!(b, TypeParamBound::Trait(tb)
                        if matches!(tb.modifier, TraitBoundModifier::Maybe(_)))
                })
                .collect();
            if t.bounds.len() != before {
                if let Type::Path(p) = &t.bounded_ty {
                    if let Some(ident) = p.path.get_ident() {
                        maybe_unsized.push(ident.clone());
                    }
                }
            }
            if t.bounds.is_empty() {
                continue;
            }
        }
        brander.visit_where_predicate_mut(&mut pred);
        branded_predicates.push(pred);
    }
    if brander.unsupported {
        return TokenStream::new();
    }

    let mut impl_generics = generics.clone();
    strip_defaults(&mut impl_generics);
    impl_generics.where_clause = None;
    for param in &mut impl_generics.params {
        if let GenericParam::Type(t) = param {
            t.bounds.push(parse_quote!(::goheap::gc::Rebrand<#b>));
        }
    }
    impl_generics.params.insert(
        0,
        GenericParam::Lifetime(syn::LifetimeParam::new(b.clone())),
    );
    let (impl_generics, _, _) = impl_generics.split_for_impl();
    let (_, ty_generics, _) = generics.split_for_impl();

    let mut where_clause = generics.where_clause.clone().unwrap_or_else(empty_where);
    for t in generics.type_params() {
        if !maybe_unsized.contains(&t.ident) {
            let ident = &t.ident;
            where_clause
                .predicates
                .push(parse_quote!(<#ident as ::goheap::gc::Rebrand<#b>>::Branded: Sized));
        }
    }
    where_clause.predicates.extend(branded_predicates);

    let branded_args: Vec<TokenStream> = generics
        .params
        .iter()
        .map(|param| match param {
            GenericParam::Lifetime(_) => b.to_token_stream(),
            GenericParam::Type(t) => {
                let ident = &t.ident;
                quote!(<#ident as ::goheap::gc::Rebrand<#b>>::Branded)
            }
            GenericParam::Const(c) => c.ident.to_token_stream(),
        })
        .collect();
    let name = &input.ident;
    let branded = if branded_args.is_empty() {
        quote!(#name)
    } else {
        quote!(#name<#(#branded_args),*>)
    };

    quote! {
        // SAFETY: `Branded` is `Self` with its one lifetime parameter (the session's) and each
        // type parameter replaced by its own `Branded`, and nothing else changed.
        #[automatically_derived]
        unsafe impl #impl_generics ::goheap::gc::Rebrand<#b> for #name #ty_generics
            #where_clause
        {
            type Branded = #branded;
        }
    }
}
