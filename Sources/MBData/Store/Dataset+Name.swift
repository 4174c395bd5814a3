extension Dataset {
    /// The name a dataset file goes by unless given another — a mixture's source, a served
    /// dataset, `explain`'s entries: the path's last component, trailing slashes ignored,
    /// without its extension (`web` for `data/web.mbdb`, `a.b` for `a.b.mbdb`). A leading dot
    /// starts the name, not an extension (`.hidden` stays `.hidden`), and a trailing dot is
    /// kept (`web.`); a path without a component (`/`, empty) gives the empty name, which
    /// every caller refuses.
    public static func name(ofPath path: String) -> String {
        guard let file = path.split(separator: "/").last else { return "" }
        guard let dot = file.lastIndex(of: "."), dot != file.startIndex, file.index(after: dot) != file.endIndex else {
            return String(file)
        }
        return String(file[..<dot])
    }
}
