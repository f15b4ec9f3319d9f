using Microsoft.ML.DualHeadDistillation.Specs;
namespace Microsoft.ML.DualHeadDistillation.Runs;

/// <summary>
/// A CSV or TSV manifest (<c>.tsv</c>: tab-separated, anything else: comma-separated): one image per line,
/// <c>path,label</c>, an empty label for an unlabeled image; an optional header line <c>path,label</c>. Paths are
/// relative to the manifest's folder unless absolute. Quoted fields ("a, b") are read as CSV quotes them.
/// </summary>
public static class ImageManifest
{
    public static List<ImageItem> Read(string file, string option = "Manifest")
    {
        if (!File.Exists(file)) throw DistillationRunException.BadData($"{option} '{file}' was not found.");
        char separator = Path.GetExtension(file).Equals(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',';
        string root = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var items = new List<ImageItem>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var fields = Split(line, separator);
            if (lineNumber == 1 && fields[0].Trim().Equals("path", StringComparison.OrdinalIgnoreCase)) continue; // header
            if (fields.Count > 2)
                throw DistillationRunException.BadData($"{option} '{file}' line {lineNumber}: expected 'path{separator}label' (2 fields), found {fields.Count}.");
            string path = fields[0].Trim();
            if (path.Length == 0) throw DistillationRunException.BadData($"{option} '{file}' line {lineNumber}: the path is empty.");
            string label = fields.Count > 1 ? fields[1].Trim() : "";
            string full = Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(root, path));
            if (!File.Exists(full)) throw DistillationRunException.BadData($"{option} '{file}' line {lineNumber}: image '{full}' was not found.");
            items.Add(new ImageItem(full, label.Length == 0 ? null : label));
        }
        if (items.Count == 0) throw DistillationRunException.BadData($"{option} '{file}' lists no images.");
        return items;
    }

    private static List<string> Split(string line, char separator)
    {
        var fields = new List<string>();
        var current = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { current.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else current.Append(c);
            }
            else if (c == '"' && current.Length == 0) quoted = true;
            else if (c == separator) { fields.Add(current.ToString()); current.Clear(); }
            else current.Append(c);
        }
        fields.Add(current.ToString());
        return fields;
    }
}
