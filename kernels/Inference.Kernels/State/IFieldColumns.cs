namespace Inference.Kernels.State;

/// <summary>
/// The value columns of a batch, one per field, each as long as the batch. Implemented by structs
/// (an Arrow record batch view, a strided span) so the apply path makes no interface calls.
/// </summary>
public interface IFieldColumns
{
    ReadOnlySpan<float> Column(int field);
}

/// <summary>Field-major values in one span: field <c>f</c> at <c>f * stride</c>, <c>count</c> values each.</summary>
public readonly ref struct StridedColumns(ReadOnlySpan<float> values, int stride, int count) : IFieldColumns
{
    private readonly ReadOnlySpan<float> _values = values;

    public ReadOnlySpan<float> Column(int field) => _values.Slice(field * stride, count);
}
