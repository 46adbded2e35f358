# bash completion for nixcache (installed as
# share/bash-completion/completions/nixcache).  The option lists are
# those of `nixcache COMMAND --help`; t/030-cli.t checks that they agree.

_nixcache_common='--redis --redis-auth --chunks --prefix --level --jobs
    --chunk-min --chunk-avg --chunk-max --force --sign-key --s3-endpoint
    --s3-bucket --s3-region --s3-prefix --s3-credentials --s3-path-style
    --s3-virtual-host --s3-inflight --s3-attempts --quiet --verbose --help'

_nixcache() {
    local cur prev cmd opts
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}

    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W 'push import verify keygen use rm pin unpin gc
                     help' \
                     -- "$cur"))
        return
    fi

    cmd=${COMP_WORDS[1]}

    case $prev in
    --redis-auth|--chunks|--sign-key|--s3-credentials|--token-file|\
    --nix-conf|--netrc|--metrics-file|--cacert)
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    --store)
        COMPREPLY=($(compgen -d -- "$cur"))
        return ;;
    --redis|--prefix|--level|--jobs|-j|--chunk-min|--chunk-avg|\
    --chunk-max|--s3-endpoint|--s3-bucket|--s3-region|--s3-prefix|\
    --s3-inflight|--s3-attempts|--url|--token|--exclude|--skip-upstream|\
    --key|--grace|--keep-days|--from-url|--trusted-key)
        return ;;
    esac

    case $cmd in
    push)   opts="$_nixcache_common --store --recursive --url --token
                  --token-file --exclude --skip-upstream" ;;
    import) opts="$_nixcache_common --from-url --trusted-key --no-check-sigs
                  --cacert --recursive" ;;
    verify) opts='--redis --redis-auth --chunks --prefix --quick
                  --s3-endpoint --s3-bucket --s3-region --s3-prefix
                  --s3-credentials --s3-path-style --s3-virtual-host
                  --help' ;;
    keygen) opts='--force --help' ;;
    use)    opts='--token --token-file --key --nix-conf --netrc --help' ;;
    rm|pin|unpin)
            opts='--redis --redis-auth --prefix --quiet --verbose --help' ;;
    gc)     opts='--redis --redis-auth --prefix --chunks --dry-run --grace
                  --keep-days --metrics-file --quiet --verbose --help' ;;
    *)      return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))

    elif [[ $cmd =~ ^(push|rm|pin|unpin)$ ]] && [[ $cur == /* ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))

    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

complete -F _nixcache nixcache
