using System.Globalization;
using System.Text.Json;
using Inference.Engine.Training;
using Inference.Models.Exchange;
using Inference.Models.Parameters;

namespace Inference.Host;

/// <summary>
/// <c>inference model export</c> of a model over ids from a checkpoint: the dense tensors and one
/// <c>embeddings.NAME.weight</c> [rows + 1, dimension] per id input (row 0 the shared default row) in the
/// model file, and beside it <c>FILE.ids.json</c>, the vocabulary: per id input its name, source and
/// dimension and, for every id holding a row, its 64-bit key and row. Keys are what the engine hashes an
/// id's UTF-8 text to (<c>python/inference_model.py</c> hashes the same way: Kafka's murmur2 made positive
/// in the top 31 bits, XXH3-64 in the low 33), so a model file never holds the ids' text.
/// </summary>
internal static class IdModelExport
{
    public const string VocabularySuffix = ".ids.json";
    public const string KeyHash = "(murmur2(utf8) & 0x7fffffff) << 33 | xxh3_64(utf8, seed 0) & (2^33 - 1)";

    /// <summary>Writes the model file and its vocabulary; returns what was written, for the command's line.</summary>
    public static string Write(string file, TrainerCheckpoint trainer)
    {
        var tables = trainer.Embeddings!;
        var inputs = trainer.IdInputs ?? throw new InvalidDataException("the checkpoint holds embedding tables but not the id inputs they belong to (written by an older engine).");
        if (inputs.Count != tables.Count)
        {
            throw new InvalidDataException($"the checkpoint holds {tables.Count} embedding tables for {inputs.Count} id inputs.");
        }
        var tensors = new List<NamedParameter>(trainer.Learner.Parameters.Parameters);
        var vocabulary = new List<object>(inputs.Count);
        for (int t = 0; t < tables.Count; t++)
        {
            var (input, table) = (inputs[t], tables[t]);
            tensors.Add(new NamedParameter($"embeddings.{input.Name}.weight", [table.RowCount + 1, table.Dimension], table.Values));
            var keys = new List<string>(table.RowCount);
            var rows = new List<int>(table.RowCount);
            for (int i = 0; i < table.Keys.Length; i++)
            {
                if (table.Rows[i] > 0)
                {
                    keys.Add(table.Keys[i].ToString(CultureInfo.InvariantCulture));
                    rows.Add(table.Rows[i]);
                }
            }
            vocabulary.Add(new { name = input.Name, source = input.Source, dimension = input.Dimension, keys, rows });
        }
        ModelFile.Write(file, new ParameterSet(tensors));
        string vocabularyFile = file + VocabularySuffix;
        File.WriteAllText(vocabularyFile, JsonSerializer.Serialize(new { format = 1, hash = KeyHash, inputs = vocabulary }));
        return string.Create(CultureInfo.InvariantCulture,
            $"{file}: a model over ids ({string.Join(", ", inputs.Zip(tables, (i, t) => $"{i.Name}: {t.RowCount:N0} rows of {t.Dimension}"))}) and its vocabulary {vocabularyFile}");
    }
}
